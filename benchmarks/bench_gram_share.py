"""Item 2: the Gram term's share of a training step (mfeat kd_gram, batch 64).

The Gram term is timed alone, forward + backward (`gram_loss` with the config's options: cosine,
centred, MSE, on the student's [B, 6, 8] and the teacher's [B, 6, 128] modality tokens), against
the whole training step of the hand-written loop (student forward, loss, backward, AdamW update),
with the teacher's forward (online) or with its outputs read from the cache (the default,
`module.teacher_cache=memory`). As a cross-check the same step without the Gram term is timed
too: the difference is the Gram term's cost inside the step. The teacher's own Gram matrix
(forward, no grad) is timed apart: the part of the term that depends on the teacher alone. The hand step is the smallest
denominator (a DistillModule step adds Lightning's per-step overhead, see bench_epoch), so these
are upper bounds on the share. All candidates run in interleaved rounds.

    python benchmarks/bench_gram_share.py [--repeats 15] [--number 20]
"""

import argparse
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Math, emit, interleaved, load, median, mfeat_kd_gram  # noqa: E402

import torch  # noqa: E402

from gramkd.distill.functional import gram_loss, gram_matrix  # noqa: E402


def step_fn(student, teacher, math: Math, batch: dict, gram: bool, cached_teacher=None):
    optimizer = torch.optim.AdamW(student.parameters(), lr=math.lr, weight_decay=math.weight_decay)
    inputs, present, target = batch["inputs"], batch["present"], batch["target"]

    def step():
        if cached_teacher is None:
            with torch.no_grad():
                teacher_out = teacher(inputs, present)
        else:
            teacher_out = cached_teacher
        student_out = student(inputs, present)
        loss = math.loss(student_out, teacher_out, target, gram)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def gram_fn(student_features: torch.Tensor, teacher_features: torch.Tensor, mask: torch.Tensor, math: Math):
    leaf = student_features.detach().clone().requires_grad_(True)

    def gram():
        leaf.grad = None
        loss = gram_loss(leaf, teacher_features, mask, math.gram_normalize, False, "mse", math.gram_center)
        loss.backward()

    return gram


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--number", type=int, default=20)
    args = parser.parse_args()
    load_before = load()
    setup = mfeat_kd_gram()
    math = Math.of(setup.cfg)
    batch = next(iter(setup.datamodule.train_dataloader()))
    teacher = setup.teacher
    with torch.no_grad():
        teacher_out = teacher(batch["inputs"], batch["present"])
        student_out = setup.student(batch["inputs"], batch["present"])
    student = copy.deepcopy(setup.student)
    candidates = {
        "step_online": step_fn(student, teacher, math, batch, True),
        "step_online_nogram": step_fn(student, teacher, math, batch, False),
        "step_cached": step_fn(student, teacher, math, batch, True, teacher_out),
        "step_cached_nogram": step_fn(student, teacher, math, batch, False, teacher_out),
        "gram": gram_fn(student_out.modality_features, teacher_out.modality_features, student_out.modality_mask, math),
        "teacher_gram": teacher_gram_fn(teacher_out.modality_features, student_out.modality_mask, math),
    }
    times = interleaved(candidates, args.repeats, args.number, warmup=3)
    ops = operation_counts(candidates["gram"])
    per_round = {
        "share_online": [g / s for g, s in zip(times["gram"], times["step_online"])],
        "share_cached": [g / s for g, s in zip(times["gram"], times["step_cached"])],
        "share_online_by_difference": [(a - b) / a for a, b in zip(times["step_online"], times["step_online_nogram"])],
        "share_cached_by_difference": [(a - b) / a for a, b in zip(times["step_cached"], times["step_cached_nogram"])],
        "teacher_gram_of_gram": [t / g for t, g in zip(times["teacher_gram"], times["gram"])],
    }
    emit({
        "item": "gram_share",
        "batch_size": len(batch["target"]),
        "student_features": list(student_out.modality_features.shape),
        "teacher_features": list(teacher_out.modality_features.shape),
        "rounds": args.repeats,
        "calls_per_round": args.number,
        "ms": {k: 1000 * median(v) for k, v in times.items()},
        "gram_aten_ops_per_call": ops,
        "share": {k: median(v) for k, v in per_round.items()},
        "load_before": load_before,
        "load_after": load(),
    })


if __name__ == "__main__":
    main()
