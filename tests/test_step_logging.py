"""Per-step values are accumulated, not logged every step; the epoch means stay what they were."""

import csv

import pytest
import torch

from gramkd.train import train_and_test

from conftest import FAST

# Logged by the DistillModule before logging was batched (self.log_dict(on_step, on_epoch) every
# step), on this config: experiment=synthetic/kd_gram, seed 0, 2 epochs, teacher 1 epoch.
GOLDEN = {
    "train/ce_epoch": [2.20965576171875, 2.108084201812744],
    "train/kd_epoch": [0.21705414354801178, 0.13943704962730408],
    "train/gram_epoch": [0.15981006622314453, 0.15067286789417267],
    "train/loss_epoch": [2.586519718170166, 2.3981940746307373],
    "train/acc": [0.10499999672174454, 0.14499999582767487],
    "train/f1": [0.09955018013715744, 0.11380564421415329],
}
# val/loss per epoch and test/loss as Lightning's own mean (`self.log(..., batch_size, sync_dist)`) gave them
EVAL_GOLDEN = {"val/loss": [2.1226751804351807, 2.1149208545684814], "test/loss": [2.1253042221069336]}
# The Gram term as it was then (diagonal in, the mean over all pairs): the values are about logging.
GRAM_THEN = ["distill.gram.exclude_diagonal=false", "distill.gram.reduction=pair"]
CONFIG = [
    "experiment=synthetic/kd_gram",
    *FAST,
    *GRAM_THEN,
    "compare_with=[]",
    "trainer.max_epochs=2",
    "teacher.overrides=['trainer.max_epochs=1']",
]


def logged_rows(compose_fit, every: int, tmp_path):
    cfg = compose_fit([*CONFIG, f"trainer.log_every_n_steps={every}"], tmp_path / f"every{every}")
    _, _, trainer = train_and_test(cfg)
    with open(tmp_path / f"every{every}" / "csv" / "metrics.csv") as f:
        return list(csv.DictReader(f)), (len(trainer.datamodule.datasets["train"]), trainer.datamodule.batch_size)


def test_epoch_means_equal_the_golden_values_and_the_steps(compose_fit, tmp_path):
    rows, (train_rows, batch) = logged_rows(compose_fit, 1, tmp_path)
    for name, values in {**GOLDEN, **EVAL_GOLDEN}.items():
        assert [float(r[name]) for r in rows if r.get(name)] == pytest.approx(values, rel=1e-6), name
    # full batches and a last, smaller one: the epoch mean weighs each step by its rows
    sizes = [batch] * (train_rows // batch) + ([train_rows % batch] if train_rows % batch else [])
    for epoch in (0, 1):
        steps = [float(r["train/ce_step"]) for r in rows if r.get("train/ce_step") and int(r["epoch"]) == epoch]
        assert len(steps) == len(sizes) > 1
        assert sum(s * n for s, n in zip(steps, sizes)) / train_rows == pytest.approx(GOLDEN["train/ce_epoch"][epoch], rel=1e-6)


def test_step_values_reach_the_logger_at_the_log_every_n_steps_cadence(compose_fit, tmp_path):
    rows, _ = logged_rows(compose_fit, 1, tmp_path / "all")
    all_steps = sorted({int(r["step"]) for r in rows if r.get("train/loss_step")})
    rows, _ = logged_rows(compose_fit, 3, tmp_path)
    steps = [int(r["step"]) for r in rows if r.get("train/loss_step")]
    assert steps == [s for s in all_steps if (s + 1) % 3 == 0] and steps
    assert [float(r["train/loss_epoch"]) for r in rows if r.get("train/loss_epoch")] == pytest.approx(GOLDEN["train/loss_epoch"], rel=1e-6)


def test_training_values_bypass_self_log_and_still_reach_callbacks_and_the_progress_bar(compose_fit, tmp_path, monkeypatch):
    import lightning as L

    names = []
    original = L.LightningModule.log
    monkeypatch.setattr(L.LightningModule, "log", lambda self, name, *a, **k: (names.append(name), original(self, name, *a, **k))[1])
    cfg = compose_fit([*CONFIG, "trainer.log_every_n_steps=1", "test_after_fit=false"], tmp_path / "run")
    metrics, _, trainer = train_and_test(cfg)  # metrics: what metrics.json gets, from trainer.callback_metrics
    assert names and not [n for n in names if n.startswith(("train/", "weight/"))]  # only validation values
    for name, values in GOLDEN.items():
        assert metrics[name.removesuffix("_epoch")] == pytest.approx(values[-1], rel=1e-6), name
    assert metrics["weight/gram"] == pytest.approx(cfg.distill.gram.weight)
    assert float(trainer.progress_bar_metrics["train/loss_epoch"]) == pytest.approx(GOLDEN["train/loss_epoch"][-1], rel=1e-6)


@pytest.mark.parametrize("num_classes", [2, 10])
def test_train_metrics_fed_in_batches_equal_one_update_per_step_to_the_bit(num_classes):
    import torch

    from gramkd.modules.metrics import BatchedUpdates, classification_metrics

    g = torch.Generator().manual_seed(num_classes)
    steps = []
    for i in range(9):
        rows = 5 if i == 8 else 16  # a last, smaller batch
        logits = 3 * torch.randn(rows, num_classes, generator=g)
        if i % 3 == 1:  # probabilities already: AUROC must not softmax these rows
            logits = torch.rand(rows, num_classes, generator=g)
        if i == 4:
            logits[0, 0] = float("nan")
        steps.append((logits, torch.randint(0, num_classes, (rows,), generator=g)))
    for max_elements in (40, 1 << 20):  # flushed mid-epoch, and once at the end
        per_step, batched = classification_metrics(num_classes, "train/"), classification_metrics(num_classes, "train/")
        updates = BatchedUpdates(batched, max_elements)
        for logits, target in steps:
            per_step.update(logits, target)
            updates.update(logits, target)
        updates.flush()
        expected, got = per_step.compute(), batched.compute()
        assert sorted(got) == sorted(expected) == sorted(["train/acc", "train/f1", *(["train/auroc"] if num_classes == 2 else [])])
        for name in expected:
            assert torch.equal(got[name], expected[name]) or (got[name].isnan() and expected[name].isnan()), name


def test_the_eval_loss_mean_weighs_batches_by_their_rows_and_keeps_a_nan():
    from gramkd.modules import ClassifierModule
    from gramkd.nets import MultimodalNet

    module = ClassifierModule(MultimodalNet({"a": (3,)}, num_classes=2, width=4, fusion="concat"), optimizer=None)
    mean = module.split_losses["val_loss"]
    mean.update(torch.tensor(1.0), 16)
    mean.update(torch.tensor(0.0), 15)
    assert mean.compute() == torch.tensor(16 / 31)  # torchmetrics 1.9's nan_strategy="disable" would give 0.5
    mean.update(torch.tensor(float("nan")), 1)
    assert mean.compute().isnan()  # a NaN loss shows, as Lightning's own mean shows it
