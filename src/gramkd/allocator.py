"""Keep the memory a CPU training step frees, instead of handing it back to the OS every step.

glibc's malloc returns freed memory to the OS (it trims the heap's top and unmaps large blocks)
and adjusts when it does so as it goes. A training step frees its activations and allocates them
again at the next step, so on the CPU each step can fault tens of megabytes of fresh pages back
in: on the ViLT benchmark, about 5,000 page faults a step and 4-7 % of the epoch. Keeping freed
memory in the process removes them; the process's resident memory then stays at its peak, as a
GPU's caching allocator keeps its own.
"""

import ctypes
import os

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's largest allowed on 64-bit: larger blocks are still mapped
NEVER_TRIM = 2**31 - 1  # mallopt takes an int: trim only once 2 GiB lie free at the heap's top
USER_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


def keep_freed_memory() -> bool:
    """Have glibc keep freed memory for the process's next allocations: the heap is not trimmed,
    and only blocks over 32 MiB are mapped on their own. Returns whether it was applied: not
    without glibc (macOS, musl), and not where the user tuned malloc through its environment
    variables or GLIBC_TUNABLES, whose settings stand. Process-wide, and lasts until it exits."""
    if not has_glibc() or user_tuned_malloc():
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))


def has_glibc() -> bool:
    """Whether this process runs on glibc (asked of the C library itself, without reading a file)."""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError, AttributeError):  # a name or a function the platform lacks
        return False


def user_tuned_malloc() -> bool:
    return any(name in os.environ for name in USER_SETTINGS) or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", "")
