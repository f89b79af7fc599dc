from pathlib import Path

import lightning as L
import torch

from gramkd.distill.functional import gram_loss, gram_matrix
from gramkd.distill.functional.gram import GRAM_DISTANCES, GRAM_REDUCTIONS, gram_loss_options, prepared_gram_loss
from gramkd.distill.gram_rows import SOURCES, GramRowSource
from gramkd.distill.heatmap import gram_heatmap_figure
from gramkd.distill.row_cache import RowCache
from gramkd.distill.step import DistillStep
from gramkd.distill.term import DistillationTerm
from gramkd.figures import log_figure

NORMALIZATIONS = ("l2", "none")


class GramDistillation(DistillationTerm):
    """The student learns the teacher's modality-level Gram matrix (arXiv 2112.11447).

    source: where the rows come from (see `GramRowSource`): `modality_features` (the networks'
    modality tokens after fusion), `prefusion_features` (before the modalities meet),
    `layer_features` (several depths, student layers mapped uniformly onto the teacher's, the loss
    averaged over the mapped pairs) or `modality_logits` (MSD-style single-modality predictions).
    exclude_diagonal: None (default) leaves the diagonal out exactly when rows are normalised: of a
    cosine Gram it is 1 on both sides and would only dilute the loss, by a share that depends on
    how many modalities a sample has. reduction: `sample` (default; each sample's mean over its
    pairs counts once) or `pair` (the mean over all pairs of the batch: a sample with k modalities
    weighs about k²); the same when every modality is present.
    At the end of each validation it logs the mean teacher and student Gram matrices as a
    heatmap to every logger and as a PNG under `<run dir>/gram/`. When the module caches the
    teacher's outputs per row, the teacher's Gram matrices are cached per row too.
    """

    default_name = "gram"

    def __init__(
        self,
        normalize: str = "l2",
        exclude_diagonal: bool | None = None,
        distance: str = "mse",
        source: str = "modality_features",
        center: bool = False,
        reduction: str = "sample",
        plot_every_n_epochs: int = 5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for option, value, choices in (
            ("normalize", normalize, NORMALIZATIONS),
            ("distance", distance, GRAM_DISTANCES),
            ("source", source, SOURCES),
            ("reduction", reduction, GRAM_REDUCTIONS),
        ):
            if value not in choices:
                raise ValueError(f"gram.{option}={value!r} is not one of {', '.join(choices)}")
        self.normalize, self.exclude_diagonal, self.distance, self.source = normalize, exclude_diagonal, distance, source
        self.center, self.reduction, self.plot_every_n_epochs = center, reduction, plot_every_n_epochs
        self.options = gram_loss_options(normalize == "l2", exclude_diagonal, distance, center, reduction)
        self.rows = GramRowSource(source)
        self._sums: dict[str, torch.Tensor] = {}
        self._module: L.LightningModule | None = None
        self._teacher_grams: RowCache | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._module = pl_module

    def loss(self, step: DistillStep) -> torch.Tensor:
        mask, student = self.rows.mask(step), self.rows.student(step)
        cache = self._teacher_gram_cache()
        if cache is None:  # the teacher's Gram matrices are made inside the loss's autograd node
            return prepared_gram_loss(student, None, mask, self.options, self.rows.teacher(step))
        return prepared_gram_loss(student, self.cached_teacher_grams(step, mask, cache), mask, self.options)

    def cached_teacher_grams(self, step: DistillStep, mask, cache: RowCache) -> torch.Tensor:
        """The teacher's Gram matrices of the step's rows, read from the per-row cache (made on a miss)."""
        index = step.batch["index"]

        def compute() -> torch.Tensor:
            with torch.no_grad():
                grams = gram_matrix(self.rows.teacher(step), mask, self.options[0], self.center)
            return self.rows.per_sample(grams, len(index))

        return self.rows.flat(cache.get_or_compute(index, compute))

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
        mask = self.rows.mask(outputs)
        for key, rows in (("student", self.rows.student(outputs)), ("teacher", self.rows.teacher(outputs))):
            self._add(key, gram_matrix(rows.detach().float(), mask, self.options[0], self.center).sum(0))
        present = self._sums["student"].new_ones(mask.batch, mask.modalities) if mask.present is None else mask.present.float()
        self._add("count", present.T @ present)  # [M, M]: the samples where both modalities are present

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


def fixed_gram_mse(step: DistillStep) -> torch.Tensor:
    """The `gram_mse` metric, one definition in every run whatever its own Gram term (so that it
    compares across methods): the cosine Gram matrices of the post-fusion rows
    (`modality_features`), uncentred, diagonal left out, squared differences averaged per sample
    then over samples. Detached."""
    with torch.no_grad():
        return gram_loss(step.student.modality_features, step.teacher.modality_features, step.gram_mask, True, True, "mse", False, "sample")
