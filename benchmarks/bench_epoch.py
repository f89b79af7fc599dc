"""Items 1 and 3: a DistillModule epoch against a hand-written PyTorch loop, and the teacher-output
cache against the online teacher.

Everything comes from the real `experiment=mfeat/kd_gram` config (mfeat data module and split,
student and teacher presets, KD T=4 + centred Gram weight 0.1, AdamW lr 1e-2 with the cosine
schedule); the teacher is randomly initialised (its weights do not change the work). Every variant
starts from the same student weights and sees the same batches in the same order, and its per-step
losses are recorded: they must be bit-identical across all variants.

Variants, measured in interleaved rounds (one fit of each per round, order rotating):
  hand            the minimal PyTorch loop (common.HandLoop), teacher under no_grad every step
  bare            a LightningModule with only the same math in training_step (Lightning's own floor)
  distill         DistillModule, teacher_cache=off: identical math to `hand` — the goal (<= 1.10)
  distill_nolog   the same with `self.log`/`self.log_dict` made no-ops (what logging costs)
  distill_nolog_nometrics  also without the torchmetrics update per step
  cache_memory    DistillModule, teacher_cache=memory (the config's default)
  cache_disk      DistillModule, teacher_cache=disk (memory-mapped .npy files in a temp folder)
The Lightning trainer is as lean as a user would run it for speed (no progress bar, summary,
checkpointing, logger or validation). An epoch's time runs from one epoch start to the next
(end-of-epoch work included); epoch 0 is reported apart (it fills the cache).

    python benchmarks/bench_epoch.py [--epochs 6] [--repeats 5]
"""

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    HandLoop, Math, distill_module, emit, epoch_timer_callback, lean_trainer, load, median, mfeat_kd_gram, quiet,
)

import lightning as L  # noqa: E402
import torch  # noqa: E402

from gramkd.modules import DistillModule  # noqa: E402


class DistillNoLog(DistillModule):
    """DistillModule whose logging calls do nothing (the metrics are still updated)."""

    def log(self, *args, **kwargs):
        pass

    def log_dict(self, *args, **kwargs):
        pass


class DistillNoLogNoMetrics(DistillNoLog):
    def _log_metrics(self, *args, **kwargs):
        pass


class BareModule(L.LightningModule):
    """The hand loop's math as a LightningModule, nothing else: no logging, no metrics."""

    def __init__(self, setup):
        super().__init__()
        self.net = __import__("copy").deepcopy(setup.student)
        self.__dict__["teacher"] = setup.teacher
        self.math = Math.of(setup.cfg)

    def training_step(self, batch, batch_idx):
        with torch.no_grad():
            teacher_out = self.teacher(batch["inputs"], batch["present"])
        student_out = self.net(batch["inputs"], batch["present"])
        return self.math.loss(student_out, teacher_out, batch["target"])

    def configure_optimizers(self):
        m = self.math
        optimizer = torch.optim.AdamW(self.net.parameters(), lr=m.lr, weight_decay=m.weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=m.t_max)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}


def lightning_fit(setup, epochs: int, make_module) -> dict:
    starts, losses = [], []
    module, terms = make_module()
    started = time.perf_counter()
    with quiet():
        lean_trainer(epochs, [*terms, epoch_timer_callback(starts, losses)]).fit(module, datamodule=setup.datamodule)
    return {"wall": time.perf_counter() - started, "starts": starts, "losses": losses, "module": module}


def hand_fit(setup, epochs: int) -> dict:
    starts, losses = [], []
    started = time.perf_counter()
    HandLoop(setup).fit(epochs, record=losses, epoch_starts=starts)
    return {"wall": time.perf_counter() - started, "starts": starts, "losses": losses}


def variants(setup, cache_dir: str) -> dict:
    def distill(cache="off", cls=None):
        def make():
            module, terms = distill_module(setup, teacher_cache=cache)
            if cls is not None:
                module.__class__ = cls  # the same object, with the hooks above swapped in
            return module, terms
        return make

    setup.cfg.module.teacher_cache_dir = cache_dir  # teacher_cache=disk writes here, not into logs/
    return {
        "hand": lambda e: hand_fit(setup, e),
        "bare": lambda e: lightning_fit(setup, e, lambda: (BareModule(setup), [])),
        "distill": lambda e: lightning_fit(setup, e, distill("off")),
        "distill_nolog": lambda e: lightning_fit(setup, e, distill("off", DistillNoLog)),
        "distill_nolog_nometrics": lambda e: lightning_fit(setup, e, distill("off", DistillNoLogNoMetrics)),
        "cache_memory": lambda e: lightning_fit(setup, e, distill("memory")),
        "cache_disk": lambda e: lightning_fit(setup, e, distill("disk")),
    }


def per_epoch(starts: list[float]) -> list[float]:
    return [b - a for a, b in zip(starts, starts[1:])]


def profile_distill(setup, epochs: int) -> dict:
    """cProfile of one DistillModule fit (teacher_cache=off): seconds per training step spent in the
    named functions (cumulative). Profiling inflates Python-heavy code, so read these as shares."""
    module, terms = distill_module(setup, teacher_cache="off")
    trainer = lean_trainer(epochs, terms)
    profiler = cProfile.Profile()
    with quiet():
        profiler.enable()
        trainer.fit(module, datamodule=setup.datamodule)
        profiler.disable()
    stats = pstats.Stats(profiler).stats
    steps = trainer.global_step

    def cumulative(path_end: str, name: str) -> float:
        return sum(v[3] for (f, _, n), v in stats.items() if f.replace("\\", "/").endswith(path_end) and n == name)

    named = {
        "fit loop (everything)": cumulative("lightning/pytorch/loops/fit_loop.py", "run"),
        "DistillModule.training_step": cumulative("gramkd/modules/distill.py", "training_step"),
        "  distill_step (teacher + student forward)": cumulative("gramkd/modules/distill.py", "distill_step"),
        "  LightningModule.log": cumulative("lightning/pytorch/core/module.py", "log"),
        "    of which _ResultMetric.to (apply_to_collection)": cumulative("logger_connector/result.py", "to"),
        "  torchmetrics MetricCollection forward (acc + F1)": cumulative("torchmetrics/collections.py", "forward"),
        "backward": cumulative("torch/_tensor.py", "backward"),
        "AdamW update (_single_tensor_adam)": cumulative("torch/optim/adam.py", "_single_tensor_adam") + cumulative("torch/optim/adam.py", "_multi_tensor_adam"),
    }
    log_calls = sum(v[1] for (f, _, n), v in stats.items() if f.replace("\\", "/").endswith("lightning/pytorch/core/module.py") and n == "log")
    return {"steps": steps, "log_calls_per_step": log_calls / steps, "ms_per_step": {k: 1000 * v / steps for k, v in named.items()}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile-epochs", type=int, default=6)
    args = parser.parse_args()
    load_before = load()
    setup = mfeat_kd_gram()
    with tempfile.TemporaryDirectory() as cache_dir:
        runs = variants(setup, cache_dir)
        names = list(runs)
        for name in names:  # warm-up: first-call costs (imports, allocator, oneDNN kernels)
            runs[name](1)
        results = {name: [] for name in names}
        for r in range(args.repeats):
            for name in names[r % len(names):] + names[: r % len(names)]:
                results[name].append(runs[name](args.epochs))
        steps_per_epoch = len(setup.datamodule.train_dataloader())

    # the math is the same: every variant's losses, step by step, bit for bit
    reference = results["hand"][0]["losses"]
    identical = {}
    for name, fits in results.items():
        identical[name] = all(len(f["losses"]) == len(reference) and all(torch.equal(a, b) for a, b in zip(f["losses"], reference)) for f in fits)
        max_diff = max(float((a - b).abs()) for f in fits for a, b in zip(f["losses"], reference))
        assert identical[name], f"{name}: losses differ from the hand-written loop's (max |diff| {max_diff:g})"

    steady = {n: [median(per_epoch(f["starts"])[1:]) for f in fits] for n, fits in results.items()}   # one per round
    first = {n: [per_epoch(f["starts"])[0] for f in fits] for n, fits in results.items()}
    walls = {n: [f["wall"] for f in fits] for n, fits in results.items()}

    def ratio(table, a, b):
        return median([x / y for x, y in zip(table[a], table[b])])

    cache_stats = {}
    for name in ("cache_memory", "cache_disk"):
        cache = results[name][-1]["module"].teacher_cache
        cache_stats[name] = {"hits": cache.hits, "misses": cache.misses}

    out = {
        "item": "epoch",
        "epochs_per_fit": args.epochs,
        "rounds": args.repeats,
        "steps_per_epoch": steps_per_epoch,
        "batch_size": setup.datamodule.batch_size,
        "train_rows": len(setup.datamodule.datasets["train"]),
        "student_params": setup.student.num_parameters,
        "teacher_params": setup.teacher.num_parameters,
        "losses_identical": identical,
        "steps_compared": len(reference),
        "epoch_s": {n: median(v) for n, v in steady.items()},
        "first_epoch_s": {n: median(v) for n, v in first.items()},
        "fit_wall_s": {n: median(v) for n, v in walls.items()},
        "ratio_vs_hand": {n: ratio(steady, n, "hand") for n in steady},
        "ratio_fit_wall_vs_hand": {n: ratio(walls, n, "hand") for n in walls},
        "cache_speedup_steady": ratio(steady, "distill", "cache_memory"),
        "cache_speedup_first_epoch": ratio(first, "distill", "cache_memory"),
        "disk_cache_speedup_steady": ratio(steady, "distill", "cache_disk"),
        "cache_stats": cache_stats,
        "per_round_ms": {n: {"epoch": [round(1000 * x, 2) for x in steady[n]], "first_epoch": [round(1000 * x, 2) for x in first[n]]} for n in steady},
        "load_before": load_before,
    }
    steps = out["steps_per_epoch"]
    out["overhead_ms_per_step"] = {
        "distill - hand": 1000 * (out["epoch_s"]["distill"] - out["epoch_s"]["hand"]) / steps,
        "bare - hand (Lightning loop)": 1000 * (out["epoch_s"]["bare"] - out["epoch_s"]["hand"]) / steps,
        "distill - distill_nolog (self.log calls)": 1000 * (out["epoch_s"]["distill"] - out["epoch_s"]["distill_nolog"]) / steps,
        "distill_nolog - distill_nolog_nometrics (torchmetrics update)": 1000 * (out["epoch_s"]["distill_nolog"] - out["epoch_s"]["distill_nolog_nometrics"]) / steps,
        "distill_nolog_nometrics - bare (DistillModule own step)": 1000 * (out["epoch_s"]["distill_nolog_nometrics"] - out["epoch_s"]["bare"]) / steps,
    }
    # a whole `make fit`-length run (30 epochs): the cache pays for the first epoch, then saves
    e = setup.cfg.trainer.max_epochs
    out["cache_speedup_full_fit_estimate"] = (e * out["epoch_s"]["distill"]) / (out["first_epoch_s"]["cache_memory"] + (e - 1) * out["epoch_s"]["cache_memory"])
    out["profile"] = profile_distill(setup, args.profile_epochs)
    out["load_after"] = load()
    emit(out)


if __name__ == "__main__":
    main()
