"""Lightning hooks gramkd short-circuits for speed, with Lightning's behaviour kept: a batch already
on the training device goes on as it is (the data modules' hook); gradients are clipped exactly when
asked (the modules' hook)."""

import warnings

import lightning as L
import pytest
import torch

from gramkd.data import SyntheticDataModule
from gramkd.data.batch_transfer import BatchesStayWhereTheyAre, already_on
from gramkd.modules import ClassifierModule
from gramkd.nets import MultimodalNet

CPU = torch.device("cpu")
MODALITIES = {"a": (5,), "b": (3,)}


def batch(**extra):
    inputs = {m: torch.randn(4, *shape) for m, shape in MODALITIES.items()}
    present = {m: torch.ones(4, dtype=torch.bool) for m in MODALITIES}
    return {"inputs": inputs, "present": present, "target": torch.tensor([0, 2, 1, 1]), "index": torch.arange(4), **extra}


class Movable:
    """Something Lightning moves by calling its `.to`."""

    def to(self, device, **kwargs):
        return f"moved to {device}"


def test_a_cpu_batch_is_the_loaders_very_object_where_lightning_would_rebuild_it():
    b = batch(names=["x", "y"], rows=4)
    assert BatchesStayWhereTheyAre().transfer_batch_to_device(b, CPU, 0) is b
    rebuilt = L.LightningDataModule().transfer_batch_to_device(b, CPU, 0)  # what is skipped
    assert rebuilt is not b and rebuilt["inputs"] is not b["inputs"] and rebuilt["inputs"]["a"] is b["inputs"]["a"]


def test_anything_that_must_move_goes_through_lightning():
    moved = BatchesStayWhereTheyAre().transfer_batch_to_device(batch(extra=(1, Movable())), CPU, 0)
    assert moved["extra"] == (1, "moved to cpu")
    assert not already_on({"x": [torch.zeros(2, device="meta")]}, CPU)
    assert not already_on(torch.zeros(2), torch.device("meta"))
    assert already_on({"x": [torch.zeros(2), None, "text", 3]}, CPU)


def test_a_fit_on_a_gramkd_data_module_hands_the_loaders_batches_to_the_step_without_a_warning():
    handed, seen = [], []

    class Watched(SyntheticDataModule):
        def transfer_batch_to_device(self, batch, device, dataloader_idx):
            moved = super().transfer_batch_to_device(batch, device, dataloader_idx)
            handed.append((batch, moved))
            return moved

    class Recording(ClassifierModule):
        def training_step(self, batch, batch_idx):
            seen.append(batch)
            return super().training_step(batch, batch_idx)

    data = Watched(num_samples=64, batch_size=16)
    module = Recording(MultimodalNet(data.modalities, data.num_classes, width=8), optimizer=torch.optim.Adam)
    trainer = L.Trainer(
        max_steps=2, limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(module, datamodule=data)
    assert not [w for w in caught if "transfer_batch_to_device" in str(w.message)]
    assert len(seen) == len(handed) == 2
    assert all(step is batch and moved is batch for step, (batch, moved) in zip(seen, handed))


def gradients_the_optimizer_steps_with(**clipping) -> list[torch.Tensor]:
    """Every gradient entry at each of 3 optimiser steps, after any clipping."""
    seen = []

    class Recording(ClassifierModule):
        def configure_gradient_clipping(self, optimizer, *args, **kwargs):
            super().configure_gradient_clipping(optimizer, *args, **kwargs)
            seen.append(torch.cat([p.grad.flatten() for p in self.parameters() if p.grad is not None]))

    torch.manual_seed(0)
    recording = Recording(MultimodalNet(MODALITIES, num_classes=3, width=8, heads=2, dropout=0.0), torch.optim.Adam)
    trainer = L.Trainer(
        max_steps=3, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, **clipping
    )
    trainer.fit(recording, train_dataloaders=torch.utils.data.DataLoader([batch() for _ in range(3)], batch_size=None))
    return seen


@pytest.mark.parametrize("algorithm", ["norm", "value"])
def test_gradients_are_clipped_when_the_trainer_asks_and_only_then(algorithm):
    free = gradients_the_optimizer_steps_with()
    clipped = gradients_the_optimizer_steps_with(gradient_clip_val=1e-3, gradient_clip_algorithm=algorithm)
    assert len(free) == len(clipped) == 3
    size = (lambda g: torch.linalg.vector_norm(g)) if algorithm == "norm" else (lambda g: g.abs().max())
    assert all(size(g) > 1e-2 for g in free)
    assert all(size(g) <= 1e-3 * (1 + 1e-5) for g in clipped)
    assert torch.allclose(clipped[0] / size(clipped[0]), free[0] / size(free[0])) == (algorithm == "norm")  # norm: only rescaled
