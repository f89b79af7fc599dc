"""Item 5b: how a training step grows with the number of modalities M and with the batch size.

The hand-written kd_gram step (the math of DistillModule: CE + KD + centred cosine Gram, AdamW
update) with the student and teacher presets of the config, on synthetic data (random
standard-normal rows, all modalities present, 10 classes):
  - M = 1, 2, 4, 8, 16 modalities of 16 features each, batch 64;
  - batch 32 … 1024 with mfeat's six views (76, 216, 64, 240, 47, 6 features).
For each: the step with the teacher's forward (online), the step with its outputs and Gram
matrices precomputed (what the caches give after the first epoch), and the Gram term alone as the
DistillModule runs it with the caches (forward + backward, the teacher's Gram matrices read per
row) with its share of the cached step, and apart the teacher's Gram matrix (forward, no grad:
what the online teacher adds to the term). All points of a sweep run in interleaved rounds.

    python benchmarks/bench_scaling.py [--repeats 7]
"""

import argparse
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from hydra.utils import instantiate  # noqa: E402

from gramkd.config import compose  # noqa: E402
from gramkd.data.mfeat import MFEAT_VIEWS  # noqa: E402
from gramkd.distill.functional import gram_matrix  # noqa: E402
from gramkd.teacher import teacher_run_config  # noqa: E402

from common import Math, emit, gram_term_fn, interleaved, load, median, optimizer_and_scheduler  # noqa: E402

NUM_CLASSES = 10


def nets(cfg, modalities: dict):
    torch.manual_seed(0)
    build = lambda net_cfg: instantiate(net_cfg, modalities=modalities, num_classes=NUM_CLASSES, _convert_="all")  # noqa: E731
    teacher = build(teacher_run_config(cfg).net).eval().requires_grad_(False)
    return build(cfg.net), teacher


def synthetic_batch(modalities: dict, batch_size: int) -> dict:
    g = torch.Generator().manual_seed(batch_size)
    return {
        "inputs": {m: torch.randn(batch_size, *shape, generator=g) for m, shape in modalities.items()},
        "present": {m: torch.ones(batch_size, dtype=torch.bool) for m in modalities},
        "target": torch.randint(0, NUM_CLASSES, (batch_size,), generator=g),
    }


def candidates_for(label: str, cfg, math: Math, modalities: dict, batch_size: int) -> dict:
    student, teacher = nets(cfg, modalities)
    student = copy.deepcopy(student)
    batch = synthetic_batch(modalities, batch_size)
    inputs, present, target = batch["inputs"], batch["present"], batch["target"]
    optimizer = optimizer_and_scheduler(cfg, list(student.parameters()))[0]
    with torch.no_grad():
        cached = teacher(inputs, present)
        student_out = student(inputs, present)
    cached_gram = math.teacher_gram(cached)

    def step(online: bool):
        def run():
            if online:
                with torch.no_grad():
                    teacher_out = teacher(inputs, present)
                loss = math.loss(student(inputs, present), teacher_out, target)
            else:  # teacher outputs and Gram matrices from the per-row caches
                loss = math.loss(student(inputs, present), cached, target, teacher_gram=cached_gram)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        return run

    def teacher_gram():
        with torch.no_grad():
            gram_matrix(cached.modality_features, cached.modality_mask, math.gram_normalize, math.gram_center)

    return {
        f"{label}|online": step(True),
        f"{label}|cached": step(False),
        f"{label}|teacher_gram": teacher_gram,
        f"{label}|gram": gram_term_fn(cfg, batch, student_out, cached, cached=True),
    }


def sweep(points: dict, repeats: int) -> dict:
    """points: label -> (candidates, calls per round). Interleaved over every candidate of every point."""
    flat, numbers = {}, {}
    for cands, number in points.values():
        for name, fn in cands.items():
            flat[name], numbers[name] = fn, number

    def repeated(name):
        fn, n = flat[name], numbers[name]
        return lambda: [fn() for _ in range(n)]

    times = interleaved({name: repeated(name) for name in flat}, repeats, 1, warmup=1)
    rows = {}
    for label in points:
        t = {
            kind: [x / numbers[f"{label}|{kind}"] for x in times[f"{label}|{kind}"]]
            for kind in ("online", "cached", "gram", "teacher_gram")
        }
        rows[label] = {
            "online_ms": 1000 * median(t["online"]),
            "cached_ms": 1000 * median(t["cached"]),
            "gram_ms": 1000 * median(t["gram"]),
            "teacher_gram_ms": 1000 * median(t["teacher_gram"]),
            "gram_share_cached": median([g / c for g, c in zip(t["gram"], t["cached"])]),
            "gram_share_online": median([g / o for g, o in zip(t["gram"], t["online"])]),
        }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--modalities", default="1,2,4,8,16")
    parser.add_argument("--batch-sizes", default="32,64,128,256,512,1024")
    args = parser.parse_args()
    load_before = load()
    cfg = compose("fit", ["experiment=mfeat/kd_gram"])
    math = Math.of(cfg)

    by_m = {}
    for m in [int(x) for x in args.modalities.split(",")]:
        modalities = {f"m{i}": (16,) for i in range(m)}
        by_m[str(m)] = (candidates_for(str(m), cfg, math, modalities, 64), max(2, 24 // m))
    m_rows = sweep(by_m, args.repeats)

    by_b = {}
    mfeat = {v: (d,) for v, d in MFEAT_VIEWS.items()}
    for b in [int(x) for x in args.batch_sizes.split(",")]:
        by_b[str(b)] = (candidates_for(str(b), cfg, math, mfeat, b), max(1, 512 // b))
    b_rows = sweep(by_b, args.repeats)
    for b, row in b_rows.items():
        row["cached_us_per_sample"] = 1000 * row["cached_ms"] / int(b)
        row["online_us_per_sample"] = 1000 * row["online_ms"] / int(b)

    emit(
        {
            "item": "scaling",
            "rounds": args.repeats,
            "by_modalities": m_rows,
            "by_batch_size": b_rows,
            "load_before": load_before,
            "load_after": load(),
        }
    )


if __name__ == "__main__":
    main()
