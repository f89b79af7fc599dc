"""gramkd: multimodal knowledge distillation with the teacher's modality-level Gram matrix.

The loss functions import only torch; Lightning parts load on first use.
"""

from gramkd.allocator import keep_freed_memory
from gramkd.distill.functional import (
    gram_loss,
    gram_matrix,
    kd_loss,
    rkd_angle_loss,
    rkd_distance_loss,
    similarity_preserving_loss,
)

__version__ = "0.1.0"
__all__ = [
    "gram_loss",
    "gram_matrix",
    "kd_loss",
    "keep_freed_memory",
    "rkd_angle_loss",
    "rkd_distance_loss",
    "similarity_preserving_loss",
]
