"""Runs that other runs depend on (teachers, reference baselines), trained once and reused.

A run is keyed by a hash of everything that determines its result; concurrent jobs that need the
same run wait on a file lock, and the run becomes visible only by an atomic rename when complete.
What training means is the caller's: `cached_run` takes the function that fills a folder.
"""

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout
from rich.console import Console

RESULT_FILE = "net.pt"
METRICS_FILE = "metrics.json"


@dataclass
class CachedRun:
    directory: Path
    metrics: dict
    reused: bool

    @property
    def weights(self) -> Path:
        return self.directory / RESULT_FILE


def cached_run(cache_dir: str | Path, label: str, key: str, train_into: Callable[[Path], None]) -> CachedRun:
    """The run `label`-`key` under `cache_dir`; if absent, `train_into(folder)` makes it there
    (writing RESULT_FILE and METRICS_FILE) and the folder is renamed into place when complete."""
    root = Path(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', label)}-{key}"
    console = Console(stderr=True, soft_wrap=True)
    lock = FileLock(str(final) + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        console.print(f"waiting for {label}: another job is training it -> {final}")
        lock.acquire()
    try:
        if (final / RESULT_FILE).is_file():
            console.print(f"[green]reusing cached {label}[/] from {final}")
            return CachedRun(final, json.loads((final / METRICS_FILE).read_text()), reused=True)
        console.print(f"[yellow]training {label}[/] (no cached run) -> {final}")
        partial = final.with_name(f".{final.name}.partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        train_into(partial)
        os.replace(partial, final)
    finally:
        lock.release()
    return CachedRun(final, json.loads((final / METRICS_FILE).read_text()), reused=False)
