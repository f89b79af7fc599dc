import math
import os
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from gramkd.data.split import SPLITS
from gramkd.errors import GramkdError
from gramkd.figures import confusion_matrix_figure, log_figure
from gramkd.modules.direct_log import log_values
from gramkd.modules.epoch_means import EpochMeans, stack_values, suffixed
from gramkd.modules.metrics import BatchedUpdates, classification_metrics
from gramkd.nets.contract import check_network
from gramkd.nets.output import MultimodalOutput
from gramkd.nets.subsets import dropped_modality_outputs


class ClassifierModule(L.LightningModule):
    """Trains one net (any that honours gramkd.nets.contract) with cross-entropy: how teachers
    and scratch students are made.

    `optimizer` and `scheduler` are factories (Hydra `_partial_`) taking params / the optimizer;
    the scheduler steps once per epoch, or once per optimiser step with `scheduler_interval=step`.
    Checkpoints carry `run_config` (set by the entry point: the net's resolved Hydra node and the
    data config) so that `gramkd test` can rebuild the net, whatever its class.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable,
        scheduler: Callable | None = None,
        scheduler_interval: str = "epoch",
        labeled_rows: int | None = None,
    ):
        super().__init__()
        if labeled_rows is not None and labeled_rows < 1:
            raise GramkdError(f"module.labeled_rows={labeled_rows} must be a positive number of rows, or null for all of them")
        self.labeled_rows = labeled_rows
        check_network(net, "net")
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        if scheduler_interval not in ("epoch", "step"):
            raise GramkdError(f"module.scheduler_interval={scheduler_interval!r} is not one of epoch, step")
        self.scheduler_interval = scheduler_interval
        num_classes = net.num_classes
        self.split_metrics = nn.ModuleDict({f"{s}_metrics": classification_metrics(num_classes, prefix=f"{s}/") for s in SPLITS})
        self.confusion = MulticlassConfusionMatrix(num_classes)
        self.robustness = nn.ModuleDict({f"drop_{m}": MulticlassAccuracy(num_classes, average="micro") for m in net.modality_names})
        # a NaN loss stays NaN (torchmetrics' "disable" would do that too, but drops the row counts in 1.9)
        self.split_losses = nn.ModuleDict({f"{s}_loss": MeanMetric(nan_strategy=math.nan) for s in ("val", "test")})
        self.run_config: dict = {}
        self.train_means = EpochMeans()
        self.train_metric_updates = BatchedUpdates(self.split_metrics["train_metrics"])

    def forward(self, batch: dict) -> MultimodalOutput:
        return self.net(batch["inputs"], batch["present"])

    def summary_nets(self) -> dict[str, nn.Module]:
        """The networks a fit's summary names (gramkd.net_summary)."""
        return {"net": self.net}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        if gradient_clip_val or self.trainer.gradient_clip_val:  # Lightning's checks, every step, only when there is something to clip
            super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def label_loss(self, logits: torch.Tensor, batch: dict) -> torch.Tensor:
        """Cross-entropy with the labels. With `labeled_rows`, only training rows whose `index` is
        below it are labeled: the mean over the batch's labeled rows (0 when it has none); the other
        rows are a transfer set, seen through the teacher alone."""
        if self.labeled_rows is None:
            return F.cross_entropy(logits, batch["target"])
        labeled = batch["index"] < self.labeled_rows
        losses = F.cross_entropy(logits, batch["target"], reduction="none")
        return (losses * labeled).sum() / labeled.sum().clamp(min=1)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self(batch)
        loss = self.label_loss(out.logits, batch)
        values = {"train/loss": loss}
        stacked = stack_values(values)
        self.stop_if_not_finite({"ce": loss}, stacked)
        self.log_train_step(values, out.logits, batch["target"], stacked)
        return loss

    def log_train_step(
        self, values: dict[str, torch.Tensor], logits: torch.Tensor, target: torch.Tensor, stacked: torch.Tensor | None = None
    ) -> None:
        """Per-step values reach the loggers at Lightning's `log_every_n_steps` cadence (as
        `<name>_step`); their epoch means and the train metrics are logged once, at epoch end
        (as `<name>_epoch`: the names Lightning gives on_step + on_epoch values), each in one call.
        `stacked`: the values as `stack_values(values)`, when the step has made it already."""
        self.train_means.add(values, len(target), stacked)
        self.train_metric_updates.update(logits, target)
        if self._trainer is not None and self._trainer._logger_connector.should_update_logs:
            self.log_values(suffixed(values, "_step"), prog_bar=("train/loss_step",))

    def on_train_epoch_end(self) -> None:
        means = self.train_means.pop_means()
        if not means:
            return
        self.train_metric_updates.flush()
        metrics = self.split_metrics["train_metrics"]
        self.log_values({**suffixed(means, "_epoch"), **self.epoch_values(), **metrics.compute()}, prog_bar=("train/loss_epoch",))
        metrics.reset()

    def log_values(self, values: dict[str, torch.Tensor], prog_bar: tuple[str, ...] = ()) -> None:
        """Values the module reduced itself, to the loggers in one call (see `direct_log`)."""
        log_values(self, values, prog_bar)

    def epoch_values(self) -> dict[str, torch.Tensor]:
        """Values a subclass logs once per training epoch, with the epoch means."""
        return {}

    def stop_if_not_finite(self, terms: dict[str, torch.Tensor], stacked: torch.Tensor | None = None) -> None:
        """Stop on a NaN/Inf loss term, naming it, after checkpointing the last good state (the
        weights before this step: no update has used the bad value yet). `stacked`: a tensor
        whose first entries are the terms' values, in order, when the step has made one already.

        Under DDP every rank sees every rank's terms first, so that all save (a collective) and
        stop together: a rank that stopped alone would leave the others waiting forever."""
        names = list(terms)
        values = stack_values(terms) if stacked is None else stacked[: len(names)]
        by_rank = self._gather_across_ranks(values)
        if math.isfinite(by_rank.sum()):
            return  # every term finite on every rank: one sum and one host read per step, however many terms and ranks
        by_rank = by_rank.reshape(-1, len(names))  # [ranks, terms]
        if bool(torch.isfinite(by_rank).all()):
            return  # finite terms whose sum overflowed
        rank, term = (~torch.isfinite(by_rank)).nonzero()[0].tolist()
        where = f" on rank {rank}" if len(by_rank) > 1 else ""
        saved = Path(self.trainer.default_root_dir) / "checkpoints" / "last_good.ckpt"
        self.trainer.save_checkpoint(saved)
        raise GramkdError(
            f"training stopped at epoch {self.current_epoch}, step {self.global_step}: loss term '{names[term]}' became "
            f"{float(by_rank[rank, term])}{where}; the last good state is saved at {saved} "
            "(lower the learning rate or that term's weight, then resume from it)"
        )

    def _gather_across_ranks(self, values: torch.Tensor) -> torch.Tensor:
        """[ranks, ...] under DDP; `values` unchanged in one process (no trainer: a bare call)."""
        return values if self._trainer is None else self.trainer.strategy.all_gather(values)

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
        accuracies = {name: metric.compute() for name, metric in self.robustness.items()}  # each synced across ranks
        # the same on every rank, which Lightning cannot know: a max over the ranks keeps the bits
        for name, accuracy in accuracies.items():
            self.log(f"test/{name}/acc", accuracy, sync_dist=True, reduce_fx="max")
        if accuracies:
            self.log("test/drop_mean/acc", torch.stack(list(accuracies.values())).mean(), sync_dist=True, reduce_fx="max")
        matrix = self.confusion.compute().cpu()
        for metric in (*self.robustness.values(), self.confusion):
            metric.reset()
        if self.trainer.is_global_zero:
            figure = confusion_matrix_figure(matrix, f"test confusion matrix ({int(matrix.sum())} rows)")
            log_figure(self.trainer, "test/confusion_matrix", figure, Path(self.trainer.default_root_dir) / "confusion_matrix.png")

    def _evaluate(self, split: str, batch: dict) -> MultimodalOutput:
        out = self(batch)
        self._log_loss(split, F.cross_entropy(out.logits, batch["target"]), len(batch["target"]))
        self._log_metrics(split, out.logits, batch["target"])
        return out

    def _log_loss(self, split: str, loss: torch.Tensor, rows: int) -> None:
        """`<split>/loss`: the mean over the split's rows, exact across DDP ranks that hold different
        numbers of them (Lightning's own mean floors the row count there: Lightning-AI/pytorch-lightning#21838)."""
        mean = self.split_losses[f"{split}_loss"]
        mean.update(loss, rows)
        self.log(f"{split}/loss", mean, on_epoch=True)

    def _log_metrics(self, split: str, logits: torch.Tensor, target: torch.Tensor) -> None:
        metrics = self.split_metrics[f"{split}_metrics"]  # a bare "train" key would shadow nn.Module.train
        metrics.update(logits, target)  # epoch values only: no per-batch compute
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=split == "val")

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=optimizer), "interval": self.scheduler_interval},
        }

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["gramkd"] = dict(self.run_config)

    def export_net(self, path: Path) -> None:
        """Write the net alone, in checkpoint layout (`gramkd` + `net.*` weights), atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        state = {f"net.{k}": v for k, v in self.net.state_dict().items()}
        torch.save({"gramkd": dict(self.run_config), "state_dict": state}, partial)
        os.replace(partial, path)
