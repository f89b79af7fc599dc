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
    """Park et al. (2019): distance-wise and angle-wise relations of the fused features (smooth L1)."""

    default_name = "rkd"

    def __init__(self, distance_weight: float = 1.0, angle_weight: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        self.distance_weight, self.angle_weight = distance_weight, angle_weight

    def loss(self, step: DistillStep) -> torch.Tensor:
        student, teacher = self.gathered(step)
        return self.distance_weight * rkd_distance_loss(student, teacher) + self.angle_weight * rkd_angle_loss(student, teacher)
