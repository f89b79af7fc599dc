"""Would a compiler bring the Gram term under 3 % of the mfeat step? (Not part of `make bench`.)

The term's default options (cosine, centred, diagonal out, MSE, per-sample mean, every modality
present, teacher online) written as one function returning the loss and its gradient, compiled with
`torch.compile` (inductor; on a CPU it needs a C++ compiler) and patched into the Gram node for the
case it covers; then real DistillModule fits (teacher_cache=off) alternate between the compiled and
the eager node, the term's forward timed in place from the second epoch on, as bench_gram_share.py
does. Also reported: the compile times and how far the compiled loss is from the eager bits.

    python benchmarks/bench_gram_compiled.py [--fits 2] [--epochs 6]
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lightning as L  # noqa: E402
import torch  # noqa: E402

import gramkd.distill.functional.gram as gram_node  # noqa: E402
from gramkd.distill.functional import gram_loss  # noqa: E402
from gramkd.distill.gram import GramDistillation  # noqa: E402

from common import distill_module, emit, epoch_timer_callback, lean_trainer, load, median, mfeat_kd_gram, quiet  # noqa: E402

DEFAULTS = (True, True, True, True, True)  # normalize, exclude diagonal, mse, center, per-sample: the node's options tuple


def default_term(features: torch.Tensor, teacher_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss and its gradient with respect to `features`, every modality present, default options."""

    def unit_rows(x):
        centred = x - x.sum(1, keepdim=True) / x.shape[1]
        norm = torch.linalg.vector_norm(centred, dim=-1, keepdim=True).clamp_min(1e-12)
        return centred / norm, norm

    teacher, _ = unit_rows(teacher_features)
    rows, norm = unit_rows(features)
    off_diagonal = ~torch.eye(features.shape[1], dtype=torch.bool, device=features.device)
    difference = torch.where(off_diagonal, torch.bmm(rows, rows.transpose(1, 2)) - torch.bmm(teacher, teacher.transpose(1, 2)), 0.0)
    pairs = features.shape[0] * features.shape[1] * (features.shape[1] - 1)
    loss = (difference * difference).sum() / pairs
    d_rows = torch.bmm(difference * (4.0 / pairs), rows)
    d_rows = (d_rows - rows * (rows * d_rows).sum(-1, keepdim=True)) / norm
    return loss, d_rows - d_rows.sum(1, keepdim=True) / d_rows.shape[1]


class CompiledNode:
    """Patches the Gram node's forward to run `compiled` for the case `default_term` covers."""

    def __init__(self, compiled):
        self.compiled, self.on, self.calls = compiled, False, 0
        self.original = gram_node._GramLossToTarget.forward

    def __enter__(self):
        def forward(ctx, features, teacher_gram, mask, options, teacher_features):
            if self.on and teacher_gram is None and mask.all_present and options == DEFAULTS:
                self.calls += 1
                loss, d_features = self.compiled(features, teacher_features)
                ctx.gradients, ctx.scale = (d_features if ctx.needs_input_grad[0] else None, None), 1.0
                ctx.set_materialize_grads(False)
                return loss
            return self.original(ctx, features, teacher_gram, mask, options, teacher_features)

        gram_node._GramLossToTarget.forward = staticmethod(forward)
        return self

    def __exit__(self, *exc):
        gram_node._GramLossToTarget.forward = staticmethod(self.original)


def term_share(setup, epochs: int) -> dict:
    """One DistillModule fit: the Gram term's forward per step, timed in place, and the step."""
    seconds, on, starts = [0.0], [False], []
    original = GramDistillation.loss

    def timed(self, step):
        started = time.perf_counter()
        try:
            return original(self, step)
        finally:
            if on[0]:
                seconds[0] += time.perf_counter() - started

    class SecondEpochOn(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            on[0] = trainer.current_epoch >= 1

    module, terms = distill_module(setup, teacher_cache="off")
    GramDistillation.loss = timed
    try:
        with quiet():
            lean_trainer(epochs, [*terms, epoch_timer_callback(starts), SecondEpochOn()]).fit(module, datamodule=setup.datamodule)
    finally:
        GramDistillation.loss = original
    steps = (epochs - 1) * len(setup.datamodule.train_dataloader())
    step_s = (starts[-1][0] - starts[1][0]) / steps
    return {"term_forward_us": 1e6 * seconds[0] / steps, "step_ms": 1e3 * step_s, "share": seconds[0] / steps / step_s}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fits", type=int, default=2, help="fits per variant, alternating")
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    load_before = load()
    setup = mfeat_kd_gram()
    batch = setup.datamodule.batch_size
    rows = len(setup.datamodule.datasets["train"])
    last = rows % batch
    features, teacher_features = torch.randn(batch, 6, 8), torch.randn(batch, 6, 128)
    compiled = torch.compile(default_term, dynamic=False)
    started = time.perf_counter()
    with torch.no_grad():  # as inside the node's forward
        compiled(features, teacher_features)
        first_compile = time.perf_counter() - started
        started = time.perf_counter()
        if last:
            compiled(features[:last], teacher_features[:last])  # the epoch's last, smaller batch
        second_compile = time.perf_counter() - started
        eager = gram_loss(features, teacher_features, None, True, None, "mse", True, "sample")
        fused = compiled(features, teacher_features)[0]
    fits = {"eager": [], "compiled": []}
    with CompiledNode(compiled) as node:
        for r in range(args.fits):
            for name in ("eager", "compiled")[:: 1 if r % 2 == 0 else -1]:
                node.on = name == "compiled"
                calls = node.calls
                fits[name].append(term_share(setup, args.epochs))
                ran_compiled = node.calls > calls
                assert ran_compiled == node.on, f"the {name} fits ran the {'compiled' if ran_compiled else 'eager'} node"
    emit(
        {
            "item": "gram_compiled",
            "train_rows": rows,
            "compile_s": {"first": first_compile, "last_batch_size": second_compile},
            "loss_relative_difference": abs(float(fused) - float(eager)) / float(eager),
            "loss_bit_identical": bool(fused == eager),
            "per_fit": fits,
            "median": {name: {key: median([f[key] for f in runs]) for key in runs[0]} for name, runs in fits.items()},
            "load_before": load_before,
            "load_after": load(),
        }
    )


if __name__ == "__main__":
    main()
