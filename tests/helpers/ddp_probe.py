"""A LightningModule that evaluates a batch-relational term on fixed global data under DDP.

Rank r owns rows [r·B, (r+1)·B) of the global batch. The student's fused features are a linear
map of its rows, so the loss has a gradient; each rank saves its loss and the (DDP-averaged)
gradient so that the test can compare them with one process on the whole batch.
"""

from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from gramkd.distill import RelationalKD, SimilarityPreserving
from gramkd.distill.step import DistillStep
from gramkd.nets import MultimodalOutput

GLOBAL_BATCH, WIDTH_IN, WIDTH_S, WIDTH_T = 8, 5, 4, 6


def global_data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(GLOBAL_BATCH, WIDTH_IN, generator=g), torch.randn(GLOBAL_BATCH, WIDTH_T, generator=g)


def fresh_projection():
    torch.manual_seed(0)
    return torch.nn.Linear(WIDTH_IN, WIDTH_S, bias=False)


def make_term(kind: str):
    return SimilarityPreserving() if kind == "sp" else RelationalKD()


def step_for(student_fused, teacher_fused) -> DistillStep:
    def out(fused):
        b = len(fused)
        return MultimodalOutput(torch.zeros(b, 2), torch.zeros(b, 1, 1), torch.ones(b, 1, dtype=torch.bool), fused)

    return DistillStep(batch={}, student=out(student_fused), teacher=out(teacher_fused))


class RelationalProbe(L.LightningModule):
    def __init__(self, kind: str, out_dir: str):
        super().__init__()
        self.kind, self.out_dir = kind, out_dir
        self.projection = fresh_projection()
        self.term = make_term(kind)

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.arange(GLOBAL_BATCH)), batch_size=GLOBAL_BATCH // 2)

    def training_step(self, batch, batch_idx):
        self.term._module = self  # what DistillationTerm.setup does with a DistillModule
        x, teacher = global_data()
        rows = slice(self.global_rank * len(batch[0]), (self.global_rank + 1) * len(batch[0]))
        self.loss = self.term.loss(step_for(self.projection(x[rows]), teacher[rows]))
        return self.loss

    def on_after_backward(self):
        grad = self.projection.weight.grad.detach().clone()
        torch.save({"loss": self.loss.detach(), "grad": grad}, Path(self.out_dir) / f"rank{self.global_rank}.pt")

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def teardown(self, stage: str) -> None:
        # the last hook of the fit, after Lightning's own teardown: without it a spawned rank may
        # abort at exit (DESIGN.md; seen once in CI, "terminate called without an active exception")
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
