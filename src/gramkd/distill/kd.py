import torch

from gramkd.distill.functional import kd_loss
from gramkd.distill.step import DistillStep
from gramkd.distill.term import DistillationTerm


class KDDistillation(DistillationTerm):
    """Hinton et al.: KL between teacher and student predictions at temperature T, times T²."""

    default_name = "kd"

    def __init__(self, temperature: float = 4.0, **kwargs):
        super().__init__(**kwargs)
        self.temperature = temperature

    def loss(self, step: DistillStep) -> torch.Tensor:
        return kd_loss(step.student.logits, step.teacher.logits, self.temperature)
