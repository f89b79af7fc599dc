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
  distill_nolog   the same with its logging made no-ops (`self.log`, `self.log_dict`, `log_values`:
                  what logging costs: the per-step values at the log_every_n_steps cadence, the
                  epoch means, metrics and term weights once per epoch)
  distill_nolog_nometrics  also without the train metrics (no rows kept per step, no compute)
  cache_memory    DistillModule, teacher_cache=memory (the config's default)
  cache_disk      DistillModule, teacher_cache=disk (memory-mapped .npy files in a temp folder)
The Lightning trainer is as lean as a user would run it for speed (no progress bar, summary,
checkpointing, logger or validation). An epoch's time runs from one epoch start to the next
(end-of-epoch work included); epoch 0 is reported apart (it fills the cache). Times are taken on
the wall clock and on the process's CPU clock (which leaves out the time other processes held the
core: on a shared machine the steadier of the two).

    python benchmarks/bench_epoch.py [--epochs 6] [--repeats 5]
"""

import argparse
import cProfile
import pstats
import resource
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lightning as L  # noqa: E402
import torch  # noqa: E402

from gramkd.modules import DistillModule  # noqa: E402
from gramkd.nets.contract import count_parameters  # noqa: E402

from common import (  # noqa: E402
    CPU,
    HandLoop,
    Math,
    distill_module,
    durations,
    emit,
    epoch_timer_callback,
    lean_trainer,
    load,
    median,
    median_ci,
    mfeat_kd_gram,
    optimizer_and_scheduler,
    quiet,
)


class DistillNoLog(DistillModule):
    """DistillModule whose logging calls (`self.log`, `self.log_dict`, `log_values`) do nothing: the `<name>_step` values at the
    log_every_n_steps cadence, the epoch means, the metrics and the term weights, once per
    epoch. The epoch sums and the metrics are still kept."""

    def log(self, *args, **kwargs):
        pass

    def log_dict(self, *args, **kwargs):
        pass

    def log_values(self, *args, **kwargs):
        pass


class DistillNoLogNoMetrics(DistillNoLog):
    """… and without the train metrics (no accuracy/F1 rows kept per step, no compute per epoch)."""

    def log_train_step(self, values, logits, target, stacked=None):
        self.train_means.add(values, len(target), stacked)

    def on_train_epoch_end(self):
        self.train_means.pop_means()


class BareModule(L.LightningModule):
    """The hand loop's math as a LightningModule, nothing else: no logging, no metrics."""

    def __init__(self, setup):
        super().__init__()
        self.net = __import__("copy").deepcopy(setup.student)
        self.__dict__["teacher"] = setup.teacher
        self.math, self.cfg = Math.of(setup.cfg), setup.cfg

    def training_step(self, batch, batch_idx):
        with torch.no_grad():
            teacher_out = self.teacher(batch["inputs"], batch["present"])
        student_out = self.net(batch["inputs"], batch["present"])
        return self.math.loss(student_out, teacher_out, batch["target"])

    def configure_optimizers(self):
        optimizer, scheduler, interval = optimizer_and_scheduler(self.cfg, [p for p in self.net.parameters() if p.requires_grad])
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": interval}}


def lightning_fit(setup, epochs: int, make_module, placement=CPU) -> dict:
    starts, losses = [], []
    module, terms = make_module()
    started, faults = placement.stamp(), minor_faults()
    with quiet():
        trainer = lean_trainer(epochs, [*terms, epoch_timer_callback(starts, losses, placement.stamp)], placement)
        trainer.fit(module, datamodule=setup.datamodule)
    fit = durations([started, placement.stamp()], "wall")[0]
    return {"fit": fit, "starts": starts, "losses": losses, "module": module, "faults": minor_faults() - faults}


def hand_fit(setup, epochs: int, placement=CPU) -> dict:
    starts, losses = [], []
    started, faults = placement.stamp(), minor_faults()
    HandLoop(setup, placement=placement).fit(epochs, record=losses, epoch_starts=starts)
    return {
        "fit": durations([started, placement.stamp()], "wall")[0],
        "starts": starts,
        "losses": losses,
        "faults": minor_faults() - faults,
    }


def minor_faults() -> int:
    """This process's page faults so far that needed no disk (fresh pages the allocator touched)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


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
        "  Gram term (its loss, forward)": cumulative("gramkd/distill/gram.py", "loss"),
        "  KD term (its loss, forward)": cumulative("gramkd/distill/kd.py", "loss"),
        "  stop_if_not_finite": cumulative("gramkd/modules/classifier.py", "stop_if_not_finite"),
        "  log_train_step (epoch sums, metric rows, cadence logs)": cumulative("gramkd/modules/classifier.py", "log_train_step"),
        "per-epoch hooks (epoch means, metrics, weights)": cumulative("gramkd/modules/distill.py", "on_train_epoch_end"),
        "LightningModule.log (every call)": cumulative("lightning/pytorch/core/module.py", "log"),
        "log_values (the module's own logging: one call per cadence step and per epoch)": cumulative(
            "gramkd/modules/direct_log.py", "log_values"
        ),
        "torchmetrics update (every call)": cumulative("torchmetrics/collections.py", "update"),
        "backward": cumulative("torch/_tensor.py", "backward"),
        "AdamW update (_single_tensor_adam)": cumulative("torch/optim/adam.py", "_single_tensor_adam")
        + cumulative("torch/optim/adam.py", "_multi_tensor_adam"),
    }
    log_calls = sum(
        v[1] for (f, _, n), v in stats.items() if f.replace("\\", "/").endswith("lightning/pytorch/core/module.py") and n == "log"
    )
    direct_calls = sum(
        v[1] for (f, _, n), v in stats.items() if f.replace("\\", "/").endswith("gramkd/modules/direct_log.py") and n == "log_values"
    )
    return {
        "steps": steps,
        "log_calls_per_step": log_calls / steps,
        "log_values_calls_per_step": direct_calls / steps,
        "ms_per_step": {k: 1000 * v / steps for k, v in named.items()},
    }


def measure(runs: dict, epochs: int, repeats: int, tolerance: float | None = None) -> dict:
    """Interleaved rounds of one fit per variant (order rotating, after a one-epoch warm-up fit of
    each); checks that every variant's losses equal the hand loop's, step by step, bit for bit
    (`tolerance`: reports the largest differences instead, and whether they are within that
    relative difference, for the caller to check once its figures are saved).
    Returns per-variant medians over rounds and the per-round ratios to the hand loop, and each
    variant's fastest epoch with its ratio to the hand loop's fastest, on the wall clock and on the
    process's CPU clock."""
    names = list(runs)
    for name in names:  # warm-up: first-call costs (imports, allocator, oneDNN kernels)
        runs[name](1)
    results = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            results[name].append(runs[name](epochs))

    reference = results["hand"][0]["losses"]
    identical, differences = {}, {}
    for name, fits in results.items():
        identical[name] = all(
            len(f["losses"]) == len(reference) and all(torch.equal(a, b) for a, b in zip(f["losses"], reference)) for f in fits
        )
        if tolerance is not None:
            differences[name] = loss_differences(fits, reference, tolerance, name)
            continue
        max_diff = max(float((a - b).abs()) for f in fits for a, b in zip(f["losses"], reference))
        assert identical[name], f"{name}: losses differ from the hand-written loop's (max |diff| {max_diff:g})"

    def ratio(table, a, b):
        return median([x / y for x, y in zip(table[a], table[b])])

    def ratio_ci(table, a, b):
        return median_ci([x / y for x, y in zip(table[a], table[b])])

    out = {"rounds": repeats, "epochs_per_fit": epochs, "losses_identical": identical, "steps_compared": len(reference)}
    if differences:
        out["loss_differences_vs_hand"] = differences
    for clock, suffix in (("wall", ""), ("cpu", "_cpu")):
        epochs = {n: [durations(f["starts"], clock) for f in fits] for n, fits in results.items()}  # each fit's epoch times
        steady = {n: [median(times[1:]) for times in fits] for n, fits in epochs.items()}  # one per round
        first = {n: [times[0] for times in fits] for n, fits in epochs.items()}
        out[f"epoch{suffix}_s"] = {n: median(v) for n, v in steady.items()}
        out[f"first_epoch{suffix}_s"] = {n: median(v) for n, v in first.items()}
        out[f"ratio_vs_hand{suffix}"] = {n: ratio(steady, n, "hand") for n in steady}
        out[f"ratio_vs_hand{suffix}_ci95"] = {n: ratio_ci(steady, n, "hand") for n in steady}
        out[f"per_round{suffix}_ms"] = {n: [round(1000 * x, 2) for x in steady[n]] for n in steady}
        # the fastest epoch of each variant over every round: the machine at its quickest, whichever
        # speed it ran at in a given round (a shared machine can switch between speeds within one)
        fastest = {n: min(min(times[1:]) for times in fits) for n, fits in epochs.items()}
        out[f"fastest_epoch{suffix}_s"] = fastest
        out[f"fastest_ratio_vs_hand{suffix}"] = {n: fastest[n] / fastest["hand"] for n in fastest}
        if "cache_memory" in runs:
            out[f"cache_speedup_steady{suffix}"] = ratio(steady, "distill", "cache_memory")
            out[f"cache_speedup_first_epoch{suffix}"] = ratio(first, "distill", "cache_memory")
    out["page_faults_per_step"] = {n: median([f["faults"] / len(f["losses"]) for f in fits]) for n, fits in results.items()}
    walls = {n: [f["fit"] for f in fits] for n, fits in results.items()}
    out["fit_wall_s"] = {n: median(v) for n, v in walls.items()}
    out["ratio_fit_wall_vs_hand"] = {n: ratio(walls, n, "hand") for n in walls}
    out["cache_stats"] = {
        name: {"hits": results[name][-1]["module"].teacher_cache.hits, "misses": results[name][-1]["module"].teacher_cache.misses}
        for name in ("cache_memory", "cache_disk")
        if name in runs
    }
    return out


def loss_differences(fits: list[dict], reference: list, tolerance: float, name: str) -> dict:
    """The largest |diff| and relative |diff| of `fits`' per-step losses from `reference`'s (which
    must have as many steps), and whether the relative one is at most `tolerance`."""
    expected = torch.stack(reference).double().cpu()
    assert all(len(f["losses"]) == len(reference) for f in fits), f"{name}: not as many steps as the hand-written loop"
    diff = torch.stack([torch.stack(f["losses"]).double().cpu() - expected for f in fits]).abs()
    relative = float((diff / expected.abs().clamp(min=1e-12)).max())
    return {"max_abs": float(diff.max()), "max_rel": relative, "within_tolerance": relative <= tolerance}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile-epochs", type=int, default=6)
    args = parser.parse_args()
    load_before = load()
    setup = mfeat_kd_gram()
    with tempfile.TemporaryDirectory() as cache_dir:
        measured = measure(variants(setup, cache_dir), args.epochs, args.repeats)
    out = {
        "item": "epoch",
        "steps_per_epoch": len(setup.datamodule.train_dataloader()),
        "batch_size": setup.datamodule.batch_size,
        "train_rows": len(setup.datamodule.datasets["train"]),
        "student_params": count_parameters(setup.student),
        "teacher_params": count_parameters(setup.teacher),
        **measured,
        "load_before": load_before,
    }
    out["disk_cache_speedup_steady"] = median([d / c for d, c in zip(out["per_round_ms"]["distill"], out["per_round_ms"]["cache_disk"])])
    steps = out["steps_per_epoch"]
    for suffix in ("", "_cpu"):
        ms = {n: 1000 * v / steps for n, v in out[f"epoch{suffix}_s"].items()}
        out[f"overhead{suffix}_ms_per_step"] = {
            "distill - hand": ms["distill"] - ms["hand"],
            "bare - hand (Lightning loop)": ms["bare"] - ms["hand"],
            "distill - distill_nolog (logging)": ms["distill"] - ms["distill_nolog"],
            "distill_nolog - distill_nolog_nometrics (train metrics)": ms["distill_nolog"] - ms["distill_nolog_nometrics"],
            "distill_nolog_nometrics - bare (DistillModule own step)": ms["distill_nolog_nometrics"] - ms["bare"],
        }
    # a whole `make fit`-length run (30 epochs): the cache pays for the first epoch, then saves
    e = setup.cfg.trainer.max_epochs
    out["cache_speedup_full_fit_estimate"] = (e * out["epoch_s"]["distill"]) / (
        out["first_epoch_s"]["cache_memory"] + (e - 1) * out["epoch_s"]["cache_memory"]
    )
    out["profile"] = profile_distill(setup, args.profile_epochs)
    out["load_after"] = load()
    emit(out)


if __name__ == "__main__":
    main()
