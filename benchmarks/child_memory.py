"""Peak memory of a child process: ru_maxrss, plus sampled peaks of anonymous and file-backed RSS.

Imports no torch, so that a parent measuring small children does not raise their floor (Linux
carries a parent's peak RSS over at exec).
"""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon and RssFile of a process, in bytes (nothing once it is gone)."""
    fields = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                fields[key] = int(value.split()[0]) * 1024
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return fields


def run_and_measure(command: list[str], workdir: Path, interval: float = 0.05) -> dict:
    """Run `command` in `workdir` (one thread, W&B offline, logs under workdir/logs); exit on failure."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "GRAMKD_LOG_DIR": str(workdir / "logs")}
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peaks = {"RssAnon": 0, "RssFile": 0, "VmRSS": 0}
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(child.stdout), daemon=True)
    reader.start()

    def sample():
        while child.returncode is None:
            for key, value in proc_status(child.pid).items():
                peaks[key] = max(peaks[key], value)
            time.sleep(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    sampler.join()
    reader.join()
    if child.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({child.returncode}):\n{''.join(output)[-3000:]}")
    return {
        "peak_rss": usage.ru_maxrss * 1024,
        "peak_anon": peaks["RssAnon"],
        "peak_file": peaks["RssFile"],
        "seconds": time.perf_counter() - started,
    }
