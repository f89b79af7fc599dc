from pathlib import Path

import lightning as L
import torch

from gramkd.distill.functional import gram_loss_to_target, gram_matrix
from gramkd.distill.functional.gram import GRAM_DISTANCES
from gramkd.distill.heatmap import gram_heatmap_figure
from gramkd.distill.row_cache import RowCache
from gramkd.distill.step import DistillStep
from gramkd.distill.term import DistillationTerm
from gramkd.figures import log_figure

SOURCES = ("modality_features", "modality_logits")
NORMALIZATIONS = ("l2", "none")


class GramDistillation(DistillationTerm):
    """The student learns the teacher's modality-level Gram matrix (arXiv 2112.11447).

    source: `modality_features` (the networks' contextualised per-modality tokens) or
    `modality_logits` (MSD-style predictions from one modality at a time, one batched forward).
    At the end of each validation it logs the mean teacher and student Gram matrices as a
    heatmap to every logger and as a PNG under `<run dir>/gram/`. When the module caches the
    teacher's outputs per row, the teacher's Gram matrices are cached per row too.
    """

    default_name = "gram"

    def __init__(
        self,
        normalize: str = "l2",
        exclude_diagonal: bool = False,
        distance: str = "mse",
        source: str = "modality_features",
        center: bool = False,
        plot_every_n_epochs: int = 5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for option, value, choices in (
            ("normalize", normalize, NORMALIZATIONS),
            ("distance", distance, GRAM_DISTANCES),
            ("source", source, SOURCES),
        ):
            if value not in choices:
                raise ValueError(f"gram.{option}={value!r} is not one of {', '.join(choices)}")
        self.normalize, self.exclude_diagonal, self.distance, self.source = normalize, exclude_diagonal, distance, source
        self.center, self.plot_every_n_epochs = center, plot_every_n_epochs
        self._sums: dict[str, torch.Tensor] = {}
        self._module: L.LightningModule | None = None
        self._teacher_grams: RowCache | None = None

    def rows(self, step: DistillStep) -> tuple[torch.Tensor, torch.Tensor]:
        """(student rows, teacher rows), each [B, M, ·], from the configured source."""
        if self.source == "modality_features":
            return step.student.modality_features, step.teacher.modality_features
        return step.single_modality("student").logits, step.single_modality("teacher").logits

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._module = pl_module

    def loss(self, step: DistillStep) -> torch.Tensor:
        student, teacher = self.rows(step)
        normalize, mask = self.normalize == "l2", step.gram_mask

        def teacher_gram() -> torch.Tensor:
            with torch.no_grad():
                return gram_matrix(teacher, mask, normalize, self.center)

        cache = self._teacher_gram_cache()
        target = cache.get_or_compute(step.batch["index"], teacher_gram) if cache is not None else teacher_gram()
        return gram_loss_to_target(student, target, mask, normalize, self.exclude_diagonal, self.distance, self.center)

    def _teacher_gram_cache(self) -> RowCache | None:
        """Per-row teacher Gram matrices, when the teacher's outputs are per-row constants."""
        if self._teacher_grams is None and getattr(self._module, "teacher_cache", None) is not None:
            self._teacher_grams = RowCache(self._module.trainer.datamodule.num_rows)
        return self._teacher_grams

    # -- the heatmap of mean Gram matrices over the validation set ------------------------------
    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._sums = {}

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if not isinstance(outputs, DistillStep) or not self._plot_this_epoch(trainer):
            return
        student, teacher = self.rows(outputs)
        mask = outputs.mask
        normalize = self.normalize == "l2"
        pairs = (mask.unsqueeze(2) & mask.unsqueeze(1)).float()
        for key, rows in (("student", student), ("teacher", teacher)):
            self._add(key, gram_matrix(rows.detach().float(), mask, normalize, self.center).sum(0))
        self._add("count", pairs.sum(0))

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._sums or trainer.sanity_checking:
            return
        sums = {k: trainer.strategy.reduce(v, reduce_op="sum") for k, v in self._sums.items()}
        count = sums["count"].clamp(min=1)
        if not trainer.is_global_zero:
            return
        teacher, student = (sums["teacher"] / count).cpu(), (sums["student"] / count).cpu()
        names = list(getattr(pl_module, "modality_names", range(teacher.shape[0])))
        figure = gram_heatmap_figure(teacher, student, names, f"{self.source}, epoch {trainer.current_epoch}")
        png = Path(trainer.default_root_dir) / "gram" / f"{self.name}_epoch{trainer.current_epoch:03d}.png"
        log_figure(trainer, f"val/{self.name}_heatmap", figure, png)

    def _add(self, key: str, value: torch.Tensor) -> None:
        self._sums[key] = self._sums[key] + value if key in self._sums else value

    def _plot_this_epoch(self, trainer: L.Trainer) -> bool:
        last = trainer.current_epoch + 1 >= (trainer.max_epochs or 0)
        return last or trainer.current_epoch % max(1, self.plot_every_n_epochs) == 0
