import torch

from gramkd.distill.functional import rkd_angle_loss, rkd_distance_loss, similarity_preserving_loss
from gramkd.distill.step import DistillStep
from gramkd.distill.term import DistillationTerm


class BatchRelationalTerm(DistillationTerm):
    """A term over relations between the samples of a batch, computed on the GLOBAL batch.

    Under DDP the fused features of every rank are gathered (with gradients flowing back to each
    rank's own rows), so every rank computes the loss of the global batch; DDP's gradient
    averaging then yields exactly the single-process gradient of that loss.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._module = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._module = pl_module

    def gathered(self, step: DistillStep) -> tuple[torch.Tensor, torch.Tensor]:
        student, teacher = step.student.fused, step.teacher.fused
        if self._module is None or self._module.trainer.world_size == 1:
            return student, teacher
        return _flatten_ranks(self._module.all_gather(student, sync_grads=True)), _flatten_ranks(self._module.all_gather(teacher))


def _flatten_ranks(gathered: torch.Tensor) -> torch.Tensor:
    return gathered.reshape(-1, *gathered.shape[2:])


class SimilarityPreserving(BatchRelationalTerm):
    """Tung & Mori (2019): match the batch×batch cosine Gram of the fused features."""

    default_name = "sp"

    def loss(self, step: DistillStep) -> torch.Tensor:
        return similarity_preserving_loss(*self.gathered(step))


class RelationalKD(BatchRelationalTerm):
    """Park et al. (2019): distance-wise and angle-wise relations of the fused features (smooth L1).

    The angle term compares all B³ triplets, so its cost grows with the cube of the batch;
    `angle_samples` = n takes it over the batch's first n samples only (a random n when batches
    are shuffled; n = 64 gives the triplets of the authors' batch of 64). None: the whole batch.
    The distance term always takes the whole batch.
    """

    default_name = "rkd"

    def __init__(self, distance_weight: float = 1.0, angle_weight: float = 2.0, angle_samples: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if angle_samples is not None and (isinstance(angle_samples, bool) or not isinstance(angle_samples, int) or angle_samples < 3):
            raise ValueError(f"rkd.angle_samples must be an integer >= 3 (a triplet) or null for the whole batch; got {angle_samples!r}")
        self.distance_weight, self.angle_weight, self.angle_samples = distance_weight, angle_weight, angle_samples

    def loss(self, step: DistillStep) -> torch.Tensor:
        student, teacher = self.gathered(step)
        angle_rows = slice(self.angle_samples)
        angle = rkd_angle_loss(student[angle_rows], teacher[angle_rows])
        return self.distance_weight * rkd_distance_loss(student, teacher) + self.angle_weight * angle
