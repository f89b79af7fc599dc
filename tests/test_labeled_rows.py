"""module.labeled_rows: only training rows whose index is below it carry labels; the others are a
transfer set the student learns about through the teacher alone."""

import numpy as np
import pytest
import torch

from gramkd.errors import GramkdError
from gramkd.modules import ClassifierModule, DistillModule
from gramkd.nets import MultimodalNet

MODALITIES = {"a": (5,), "b": (3,)}


def net(seed=0):
    torch.manual_seed(seed)
    return MultimodalNet(MODALITIES, num_classes=3, width=8, heads=2, dropout=0.0)


def batch(index):
    generator = torch.Generator().manual_seed(1)
    rows = len(index)
    inputs = {m: torch.randn(rows, *shape, generator=generator) for m, shape in MODALITIES.items()}
    present = {m: torch.ones(rows, dtype=torch.bool) for m in MODALITIES}
    return {"inputs": inputs, "present": present, "target": torch.tensor([0, 2, 1, 1, 0, 2])[:rows], "index": torch.tensor(index)}


def ce_by_hand(logits, target, rows):
    """float64 cross-entropy, averaged over `rows`."""
    logits = logits.detach().double().numpy()
    log_probs = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    return -np.mean([log_probs[r, target[r]] for r in rows])


def test_only_rows_below_labeled_rows_count_in_the_cross_entropy():
    module = ClassifierModule(net(), torch.optim.Adam, labeled_rows=100)
    b = batch([3, 250, 99, 100, 7, 4000])  # rows 3, 99, 7 are labeled
    logits = module(b).logits
    got = module.label_loss(logits, b)
    assert got.item() == pytest.approx(ce_by_hand(logits, b["target"].numpy(), [0, 2, 4]), rel=1e-6)
    everything = ClassifierModule(net(), torch.optim.Adam)
    assert everything.label_loss(logits, b).item() == pytest.approx(ce_by_hand(logits, b["target"].numpy(), range(6)), rel=1e-6)


def test_a_batch_without_labeled_rows_adds_nothing():
    module = ClassifierModule(net(), torch.optim.Adam, labeled_rows=10)
    b = batch([10, 11, 50])
    loss = module.label_loss(module(b).logits, b)
    loss.backward()
    assert loss.item() == 0.0
    assert all(p.grad is None or not p.grad.any() for p in module.parameters())


def test_the_distill_module_uses_the_same_labeled_rows():
    student = DistillModule(net(), net(1).eval(), torch.optim.Adam, labeled_rows=100)
    b = batch([3, 250, 99, 100])
    logits = student(b).logits
    assert student.labeled_rows == 100
    assert student.label_loss(logits, b).item() == pytest.approx(ce_by_hand(logits, b["target"].numpy(), [0, 2]), rel=1e-6)


def test_labeled_rows_must_be_positive():
    with pytest.raises(GramkdError, match=r"^module.labeled_rows=0 must be a positive number of rows, or null for all of them$"):
        ClassifierModule(net(), torch.optim.Adam, labeled_rows=0)
