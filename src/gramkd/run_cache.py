"""Runs that other runs depend on (teachers, reference baselines), trained once and reused.

A run is keyed by a hash of everything that determines its result; concurrent jobs that need the
same run wait on a file lock, and the run becomes visible only by an atomic rename when complete.
"""

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

import gramkd
from gramkd.reporting import write_metrics

RESULT_FILE = "net.pt"
# Settings that change how a run looks, not what it learns.
COSMETIC = {"paths", "logger", "hydra", "name", "test_after_fit", "optimized_metric", "compare_with"}
COSMETIC_TRAINER = {"enable_progress_bar", "enable_model_summary", "log_every_n_steps", "default_root_dir"}


@dataclass
class CachedRun:
    directory: Path
    metrics: dict
    reused: bool

    @property
    def weights(self) -> Path:
        return self.directory / RESULT_FILE


def _train_into(cfg: DictConfig, final: Path) -> dict:
    """Train in a private folder, then rename it to `final` (atomic: a complete run or none)."""
    from gramkd.train import train_and_test  # the cache sits below the training entry point

    partial = final.with_name(f".{final.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    cfg = cfg.copy()
    cfg.paths.output_dir = str(partial)
    cfg.test_after_fit = True
    metrics, module, _ = train_and_test(cfg)
    module.export_net(partial / RESULT_FILE)
    write_metrics(partial / "metrics.json", metrics)
    os.replace(partial, final)
    return metrics


def run_key(cfg: DictConfig, ignore: tuple[str, ...] = ()) -> str:
    """A short hash of the resolved config, less its cosmetic settings (and `ignore`), plus gramkd's version."""
    cfg = cfg.copy()
    cfg.paths.output_dir = "<run>"
    plain = OmegaConf.to_container(cfg, resolve=True)
    for key in (*COSMETIC, *ignore):
        plain.pop(key, None)
    for key in COSMETIC_TRAINER:
        plain.get("trainer", {}).pop(key, None)
    plain.get("callbacks", {}).pop("rich_progress_bar", None)
    plain["gramkd_version"] = gramkd.__version__
    return hashlib.sha256(json.dumps(plain, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cached_fit(cfg: DictConfig, cache_dir: str | Path, label: str) -> CachedRun:
    """Train `cfg` (a full `fit` config) unless an identical run is cached; return the run."""
    root = Path(cache_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', label)}-{run_key(cfg)}"
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
            return CachedRun(final, json.loads((final / "metrics.json").read_text()), reused=True)
        console.print(f"[yellow]training {label}[/] (no cached run) -> {final}")
        metrics = _train_into(cfg, final)
    finally:
        lock.release()
    return CachedRun(final, metrics, reused=False)
