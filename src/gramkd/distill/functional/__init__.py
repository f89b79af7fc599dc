"""Pure distillation losses: torch only, importable without Lightning."""

from gramkd.distill.functional.gram import gram_loss, gram_loss_to_target, gram_matrix
from gramkd.distill.functional.kd import kd_loss
from gramkd.distill.functional.relational import (
    rkd_angle_loss,
    rkd_distance_loss,
    similarity_preserving_loss,
)

__all__ = [
    "gram_loss",
    "gram_loss_to_target",
    "gram_matrix",
    "kd_loss",
    "rkd_angle_loss",
    "rkd_distance_loss",
    "similarity_preserving_loss",
]
