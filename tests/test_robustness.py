"""Dropped-modality robustness at test time, on cases whose answer is known.

One modality carries the label, the other is pure noise: dropping the noise must leave the
accuracy as it is, dropping the informative one must bring it to chance.
"""

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from gramkd.modules import ClassifierModule
from gramkd.nets import MultimodalNet, MultimodalOutput
from gramkd.nets.subsets import dropped_modality_outputs

NAMES = ["noise", "signal"]


class SignalOnlyNet(nn.Module):
    """Two classes; the head reads only `signal` (±1 → class 1/0); without it the logits are 0
    (a tie, so argmax says class 0)."""

    def __init__(self):
        super().__init__()
        self.modality_names, self.num_classes = list(NAMES), 2
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, inputs, present) -> MultimodalOutput:
        signal = inputs["signal"][:, 0] * present["signal"].float() * self.scale
        logits = torch.stack([-signal, signal], dim=1)
        mask = torch.stack([present[m] for m in NAMES], dim=1)
        features = torch.stack([inputs["noise"][:, :1], inputs["signal"]], dim=1) * mask.unsqueeze(-1)
        return MultimodalOutput(logits, features, mask, signal[:, None])


def batches(num: int, batch_size: int, seed: int, noise_dim: int = 3, signal_dim: int = 1) -> list[dict]:
    """Balanced labels; `signal` = ±1 (times a random positive scale when wider), `noise` ~ N(0, 1)."""
    g = torch.Generator().manual_seed(seed)
    target = torch.arange(num) % 2
    target = target[torch.randperm(num, generator=g)]
    sign = (2 * target - 1).float()[:, None]
    signal = sign * (1 + torch.rand(num, signal_dim, generator=g)) if signal_dim > 1 else sign
    noise = torch.randn(num, noise_dim, generator=g)
    rows = []
    for start in range(0, num, batch_size):
        part = slice(start, start + batch_size)
        n = len(target[part])
        rows.append(
            {
                "inputs": {"noise": noise[part], "signal": signal[part]},
                "present": {m: torch.ones(n, dtype=torch.bool) for m in NAMES},
                "target": target[part],
                "index": torch.arange(start, start + n),
            }
        )
    return rows


def run_test(module: L.LightningModule, data: list[dict], tmp_path) -> dict[str, float]:
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.test(module, dataloaders=DataLoader(data, batch_size=None), verbose=False)
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


def test_dropped_modality_outputs_of_a_net_that_reads_one_modality():
    net = SignalOnlyNet()
    batch = batches(200, 200, seed=0)[0]
    dropped = dropped_modality_outputs(net, batch["inputs"], batch["present"]).logits  # [B, M, C]
    target = batch["target"]
    assert (dropped[:, NAMES.index("noise")].argmax(-1) == target).float().mean() == 1.0
    assert torch.equal(dropped[:, NAMES.index("signal")], torch.zeros(200, 2))  # nothing left to decide on
    assert (dropped[:, NAMES.index("signal")].argmax(-1) == target).float().mean() == 0.5  # chance: balanced classes


def test_classifier_test_reports_accuracy_per_dropped_modality(tmp_path):
    module = ClassifierModule(SignalOnlyNet(), optimizer=None)
    metrics = run_test(module, batches(300, 64, seed=1), tmp_path)
    assert metrics["test/acc"] == 1.0
    assert metrics["test/drop_noise/acc"] == 1.0  # unchanged
    assert metrics["test/drop_signal/acc"] == 0.5  # chance
    assert metrics["test/drop_mean/acc"] == pytest.approx(0.75)
    assert (tmp_path / "confusion_matrix.png").is_file()


def test_a_trained_net_degrades_only_without_the_informative_modality(tmp_path):
    """The real MultimodalNet, trained with both modalities: the absent-modality masking must
    hide the signal (chance) and absent noise must not matter."""
    L.seed_everything(0, verbose=False)
    net = MultimodalNet({"noise": (4,), "signal": (4,)}, num_classes=2, width=8, heads=2, dropout=0.0)
    module = ClassifierModule(net, optimizer=lambda params: torch.optim.Adam(params, lr=1e-2))
    train = batches(512, 64, seed=2, noise_dim=4, signal_dim=4)
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=8,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        limit_val_batches=0,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, train_dataloaders=DataLoader(train, batch_size=None))
    metrics = run_test(module, batches(400, 100, seed=3, noise_dim=4, signal_dim=4), tmp_path)
    assert metrics["test/acc"] >= 0.97
    assert metrics["test/drop_noise/acc"] >= metrics["test/acc"] - 0.03
    assert abs(metrics["test/drop_signal/acc"] - 0.5) <= 0.1  # the label is gone with the signal
