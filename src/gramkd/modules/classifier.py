import os
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from gramkd.data.split import SPLITS
from gramkd.errors import GramkdError
from gramkd.figures import confusion_matrix_figure, log_figure
from gramkd.modules.metrics import classification_metrics
from gramkd.nets import MultimodalNet, MultimodalOutput
from gramkd.nets.subsets import dropped_modality_outputs


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
        self.confusion = MulticlassConfusionMatrix(num_classes)
        self.robustness = nn.ModuleDict({f"drop_{m}": MulticlassAccuracy(num_classes, average="micro") for m in net.modality_names})
        self.run_config: dict = {}

    def forward(self, batch: dict) -> MultimodalOutput:
        return self.net(batch["inputs"], batch["present"])

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self(batch)
        loss = F.cross_entropy(out.logits, batch["target"])
        self.stop_if_not_finite({"ce": loss})
        self._log_metrics("train", out.logits, batch["target"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["target"]))
        return loss

    def stop_if_not_finite(self, terms: dict[str, torch.Tensor]) -> None:
        """Stop on a NaN/Inf loss term, naming it, after checkpointing the last good state (the
        weights before this step: no update has used the bad value yet)."""
        if bool(torch.isfinite(torch.stack([value.detach() for value in terms.values()])).all()):
            return  # one host sync per step, however many terms
        bad = [name for name, value in terms.items() if not torch.isfinite(value).all()]
        saved = Path(self.trainer.default_root_dir) / "checkpoints" / "last_good.ckpt"
        self.trainer.save_checkpoint(saved)
        value = float(terms[bad[0]].detach())
        raise GramkdError(
            f"training stopped at epoch {self.current_epoch}, step {self.global_step}: loss term '{bad[0]}' became {value}; "
            f"the last good state is saved at {saved} (lower the learning rate or that term's weight, then resume from it)"
        )

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate("val", batch)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        out = self._evaluate("test", batch)
        self._test_extras(batch, out.logits)

    def _test_extras(self, batch: dict, logits: torch.Tensor) -> None:
        """The confusion matrix, and accuracy with each modality dropped in turn (robustness)."""
        self.confusion(logits, batch["target"])
        if len(self.net.modality_names) < 2:
            return
        dropped = dropped_modality_outputs(self.net, batch["inputs"], batch["present"]).logits  # [B, M, C]
        for m, name in enumerate(self.net.modality_names):
            self.robustness[f"drop_{name}"](dropped[:, m], batch["target"])

    def on_test_epoch_end(self) -> None:
        accuracies = {name: metric.compute() for name, metric in self.robustness.items()}
        for name, accuracy in accuracies.items():
            self.log(f"test/{name}/acc", accuracy)
        if accuracies:
            self.log("test/drop_mean/acc", torch.stack(list(accuracies.values())).mean())
        matrix = self.confusion.compute().cpu()
        for metric in (*self.robustness.values(), self.confusion):
            metric.reset()
        if self.trainer.is_global_zero:
            figure = confusion_matrix_figure(matrix, f"test confusion matrix ({int(matrix.sum())} rows)")
            log_figure(self.trainer, "test/confusion_matrix", figure, Path(self.trainer.default_root_dir) / "confusion_matrix.png")

    def _evaluate(self, split: str, batch: dict) -> MultimodalOutput:
        out = self(batch)
        loss = F.cross_entropy(out.logits, batch["target"])
        self.log(f"{split}/loss", loss, batch_size=len(batch["target"]), sync_dist=True)
        self._log_metrics(split, out.logits, batch["target"])
        return out

    def _log_metrics(self, split: str, logits: torch.Tensor, target: torch.Tensor) -> None:
        metrics = self.split_metrics[f"{split}_metrics"]  # a bare "train" key would shadow nn.Module.train
        metrics.update(logits, target)  # epoch values only: no per-batch compute
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
