import os
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from gramkd.data.split import SPLITS
from gramkd.modules.metrics import classification_metrics
from gramkd.nets import MultimodalNet, MultimodalOutput


class ClassifierModule(L.LightningModule):
    """Trains one MultimodalNet with cross-entropy: how teachers and scratch students are made.

    `optimizer` and `scheduler` are factories (Hydra `_partial_`) taking params / the optimizer.
    Checkpoints carry the net's constructor arguments (and the run's data config, when the
    entry point sets `run_config`) so that `gramkd test` can rebuild them.
    """

    def __init__(self, net: MultimodalNet, optimizer: Callable, scheduler: Callable | None = None):
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        num_classes = net.config["num_classes"]
        self.split_metrics = nn.ModuleDict({f"{s}_metrics": classification_metrics(num_classes, prefix=f"{s}/") for s in SPLITS})
        self.run_config: dict = {}

    def forward(self, batch: dict) -> MultimodalOutput:
        return self.net(batch["inputs"], batch["present"])

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self(batch)
        loss = F.cross_entropy(out.logits, batch["target"])
        self._log_metrics("train", out.logits, batch["target"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["target"]))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate("val", batch)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate("test", batch)

    def _evaluate(self, split: str, batch: dict) -> MultimodalOutput:
        out = self(batch)
        loss = F.cross_entropy(out.logits, batch["target"])
        self.log(f"{split}/loss", loss, batch_size=len(batch["target"]), sync_dist=True)
        self._log_metrics(split, out.logits, batch["target"])
        return out

    def _log_metrics(self, split: str, logits: torch.Tensor, target: torch.Tensor) -> None:
        metrics = self.split_metrics[f"{split}_metrics"]  # a bare "train" key would shadow nn.Module.train
        metrics(logits, target)
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=split == "val")

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=optimizer), "interval": "epoch"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["gramkd"] = {"net": self.net.config, **self.run_config}

    def export_net(self, path: Path) -> None:
        """Write the net alone, in checkpoint layout (`gramkd` + `net.*` weights), atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        state = {f"net.{k}": v for k, v in self.net.state_dict().items()}
        torch.save({"gramkd": {"net": self.net.config, **self.run_config}, "state_dict": state}, partial)
        os.replace(partial, path)
