"""Item 2: the Gram term's share of a training step (mfeat kd_gram, batch 64).

The Gram term is timed as the DistillModule runs it, forward + backward: `GramDistillation.loss`
with the config's options (cosine, centred, MSE) on a fresh DistillStep of one real mfeat batch
(the student's [B, 6, 8] rows a leaf that takes the gradient, the teacher's [B, 6, 128] rows), in
its two cases:
  online  teacher_cache=off: the teacher's Gram matrices are computed from its rows every step
  cached  teacher_cache=memory (the config's default): they are read from the per-row cache
against the whole training step of the hand-written loop in the same case (student forward, loss,
backward, AdamW update; online: with the teacher's forward; cached: teacher outputs and Gram
matrices precomputed, as the cache gives them). The same steps without the Gram term are timed
too: the difference is the term's cost inside the step (a cross-check). The hand step is the
smallest denominator (a DistillModule step adds Lightning's per-step overhead, see bench_epoch),
so these are upper bounds on the share. Then the same inside real DistillModule fits (teacher_cache
off and memory, `--fits` each, alternating): the term's forward (`GramDistillation.loss`) and its
autograd node's backward are timed in place, against the fit's own step time, from the second
epoch on. All micro candidates run in interleaved rounds; their times are taken
on the wall clock and on this process's CPU clock (which leaves out the time other processes held
the core: on a shared machine the steadier of the two).

    python benchmarks/bench_gram_share.py [--repeats 15] [--number 20]
"""

import argparse
import copy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lightning as L  # noqa: E402
import torch  # noqa: E402

from gramkd.distill.functional import gram_matrix  # noqa: E402

from common import (  # noqa: E402
    CPU,
    Math,
    distill_module,
    emit,
    epoch_timer_callback,
    gram_term_fn,
    interleaved,
    lean_trainer,
    load,
    median,
    mfeat_kd_gram,
    optimizer_and_scheduler,
    quiet,
)


def step_fn(cfg, student, teacher, math: Math, batch: dict, gram: bool, cached=None):
    """One hand-written training step; `cached`: (teacher outputs, teacher Gram) precomputed."""
    optimizer = optimizer_and_scheduler(cfg, list(student.parameters()))[0]
    inputs, present, target = batch["inputs"], batch["present"], batch["target"]

    def step():
        if cached is None:
            with torch.no_grad():
                teacher_out = teacher(inputs, present)
            loss = math.loss(student(inputs, present), teacher_out, target, gram)
        else:
            loss = math.loss(student(inputs, present), cached[0], target, gram, teacher_gram=cached[1])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def teacher_gram_fn(teacher_features: torch.Tensor, mask: torch.Tensor, math: Math):
    def teacher_gram():
        with torch.no_grad():
            gram_matrix(teacher_features, mask, math.gram_normalize, math.gram_center)

    return teacher_gram


def operation_counts(fn, calls: int = 20) -> dict:
    """aten operations per call of `fn` (torch.profiler): all of them, and the `where`s."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            fn()
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    return {"all": sum(e.count for e in events) / calls, "where": sum(e.count for e in events if e.key == "aten::where") / calls}


class TermTimer:
    """Times the Gram term inside real DistillModule fits: `GramDistillation.loss` (its forward:
    the step's mask, the teacher's Gram matrices computed or read from the cache, the student's,
    the loss) and its autograd node's backward, from the second epoch on (the first fills the
    caches). Patches the two methods while it is entered. On a GPU (`placement`) the device is
    synchronised at both ends of each timed call."""

    def __init__(self, placement=CPU):
        self.seconds, self.on = 0.0, False
        self.now = time.perf_counter if placement.device == "cpu" else lambda: placement.stamp()[0]

    def __enter__(self):
        from gramkd.distill.functional.gram import _GramLossToTarget
        from gramkd.distill.gram import GramDistillation

        self.patched = [(GramDistillation, "loss"), (_GramLossToTarget, "backward")]
        self.originals = [cls.__dict__[name] for cls, name in self.patched]
        for (cls, name), original in zip(self.patched, self.originals):
            setattr(
                cls,
                name,
                self.timed(original.__func__ if isinstance(original, staticmethod) else original, isinstance(original, staticmethod)),
            )
        return self

    def __exit__(self, *exc):
        for (cls, name), original in zip(self.patched, self.originals):
            setattr(cls, name, original)

    def timed(self, fn, static: bool):
        def wrapper(*args, **kwargs):
            started = self.now()
            try:
                return fn(*args, **kwargs)
            finally:
                if self.on:
                    self.seconds += self.now() - started

        return staticmethod(wrapper) if static else wrapper


def module_share(setup, cache: str, epochs: int, placement=CPU) -> dict:
    """One DistillModule fit (teacher_cache `cache`): the Gram term's seconds per step inside it,
    and the whole step's (epoch time / steps), over epochs 2…, in the same fit."""
    module, terms = distill_module(setup, teacher_cache=cache)
    starts = []
    with TermTimer(placement) as timer:

        class SecondEpochOn(L.Callback):
            def on_train_epoch_start(self, trainer, pl_module):
                timer.on = trainer.current_epoch >= 1

        trainer = lean_trainer(epochs, [*terms, epoch_timer_callback(starts, clock=placement.stamp), SecondEpochOn()], placement)
        with quiet():
            trainer.fit(module, datamodule=setup.datamodule)
    steps = (epochs - 1) * len(setup.datamodule.train_dataloader())
    step_s = (starts[-1][0] - starts[1][0]) / steps
    return {"term_ms": 1000 * timer.seconds / steps, "step_ms": 1000 * step_s, "share": timer.seconds / steps / step_s}


def module_shares(setup, rounds: int, epochs: int, placement=CPU) -> dict:
    fits = {"online": [], "cached": []}
    for r in range(rounds):
        for name, cache in (("online", "off"), ("cached", "memory"))[:: 1 if r % 2 == 0 else -1]:
            fits[name].append(module_share(setup, cache, epochs, placement))
    return {name: {key: median([f[key] for f in runs]) for key in ("term_ms", "step_ms", "share")} for name, runs in fits.items()}


def shares(times: dict) -> dict:
    """Per-round shares (medians): the term ÷ the step, and the step's by-difference cross-check."""

    def ratio(a, b):
        return median([x / y for x, y in zip(times[a], times[b])])

    def by_difference(with_gram, without):
        return median([(x - y) / x for x, y in zip(times[with_gram], times[without])])

    return {
        "share_online": ratio("term_online", "step_online"),
        "share_cached": ratio("term_cached", "step_cached"),
        "share_online_by_difference": by_difference("step_online", "step_online_nogram"),
        "share_cached_by_difference": by_difference("step_cached", "step_cached_nogram"),
        "teacher_gram_of_online_term": ratio("teacher_gram", "term_online"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--number", type=int, default=20)
    parser.add_argument("--fits", type=int, default=5, help="DistillModule fits per teacher_cache mode (in-fit share)")
    parser.add_argument("--fit-epochs", type=int, default=6)
    args = parser.parse_args()
    load_before = load()
    setup = mfeat_kd_gram()
    cfg, math = setup.cfg, Math.of(setup.cfg)
    batch = next(iter(setup.datamodule.train_dataloader()))
    teacher = setup.teacher
    with torch.no_grad():
        teacher_out = teacher(batch["inputs"], batch["present"])
        student_out = setup.student(batch["inputs"], batch["present"])
    cached = (teacher_out, math.teacher_gram(teacher_out))
    student = copy.deepcopy(setup.student)
    candidates = {
        "step_online": step_fn(cfg, student, teacher, math, batch, True),
        "step_online_nogram": step_fn(cfg, student, teacher, math, batch, False),
        "step_cached": step_fn(cfg, student, teacher, math, batch, True, cached),
        "step_cached_nogram": step_fn(cfg, student, teacher, math, batch, False, cached),
        "term_online": gram_term_fn(cfg, batch, student_out, teacher_out, cached=False),
        "term_cached": gram_term_fn(cfg, batch, student_out, teacher_out, cached=True),
        "teacher_gram": teacher_gram_fn(teacher_out.modality_features, student_out.modality_mask, math),
    }
    times = interleaved(candidates, args.repeats, args.number, warmup=3, clock="both")
    in_fit = module_shares(setup, args.fits, args.fit_epochs)
    emit(
        {
            "item": "gram_share",
            "batch_size": len(batch["target"]),
            "student_features": list(student_out.modality_features.shape),
            "teacher_features": list(teacher_out.modality_features.shape),
            "rounds": args.repeats,
            "calls_per_round": args.number,
            "ms": {k: 1000 * median(v) for k, v in times["wall"].items()},
            "cpu_ms": {k: 1000 * median(v) for k, v in times["cpu"].items()},
            "aten_ops_per_call": {name: operation_counts(candidates[name]) for name in ("term_online", "term_cached")},
            "share": shares(times["wall"]),
            "cpu_share": shares(times["cpu"]),
            "in_distill_module": in_fit,
            "fits": args.fits,
            "fit_epochs": args.fit_epochs,
            "load_before": load_before,
            "load_after": load(),
        }
    )


if __name__ == "__main__":
    main()
