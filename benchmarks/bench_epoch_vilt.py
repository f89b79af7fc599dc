"""Item 1b: the DistillModule against a hand-written loop with ViLT nets (goal: ≤ 1.05).

`experiment=digits_nlvr/kd_gram_vilt` from the real configs (with `common.VILT_BENCH`: batches of 64,
every row labeled): a ViLT student (conf/net/vilt_student.yaml as that experiment sets it: hidden 32,
2 layers, an 8-channel conv stem) distilled from a randomly initialised ViLT teacher (vilt_teacher.yaml as the
teacher experiment sets it: hidden 64, 4 layers) with KD + the centred Gram term (weight 1), AdamW
with the per-step warm-up/cosine schedule, on digits_nlvr batches of 64 (two 1x16x16 digit images
cut into 4x4 patches, a 12-token statement from a ~40-word vocabulary), generated in a temporary
folder with `--train-rows` training examples. Variants as in bench_epoch.py: `hand`, `bare`,
`distill` (teacher_cache=off, the goal), `cache_memory` (the config's default); the losses of every
step must be bit-identical.

    python benchmarks/bench_epoch_vilt.py [--epochs 4] [--repeats 9] [--train-rows 512]
"""

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_epoch import BareModule, hand_fit, lightning_fit, measure  # noqa: E402

from gramkd.nets.contract import count_parameters, modality_specs  # noqa: E402

from common import distill_module, emit, load, vilt_kd_gram  # noqa: E402


def variants(setup) -> dict:
    def distill(cache: str):
        return lambda: distill_module(setup, teacher_cache=cache)

    return {
        "hand": lambda e: hand_fit(setup, e),
        "bare": lambda e: lightning_fit(setup, e, lambda: (BareModule(setup), [])),
        "distill": lambda e: lightning_fit(setup, e, distill("off")),
        "cache_memory": lambda e: lightning_fit(setup, e, distill("memory")),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--train-rows", type=int, default=512)
    args = parser.parse_args()
    load_before = load()
    with tempfile.TemporaryDirectory() as root:
        setup = vilt_kd_gram(root, {"train": args.train_rows, "val": 64, "test": 64})
        measured = measure(variants(setup), args.epochs, args.repeats)
        batch = next(iter(setup.datamodule.train_dataloader()))
    emit(
        {
            "item": "epoch_vilt",
            "steps_per_epoch": len(setup.datamodule.train_dataloader()),
            "batch_size": setup.datamodule.batch_size,
            "train_rows": args.train_rows,
            "inputs": {name: list(x.shape[1:]) for name, x in batch["inputs"].items()},
            "vocab_size": max(spec.vocab_size or 0 for spec in modality_specs(setup.datamodule.modalities).values()),
            "student": {"class": type(setup.student).__name__, "params": count_parameters(setup.student)},
            "teacher": {"class": type(setup.teacher).__name__, "params": count_parameters(setup.teacher)},
            **measured,
            "load_before": load_before,
            "load_after": load(),
        }
    )


if __name__ == "__main__":
    main()
