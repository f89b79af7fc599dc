"""gramkd: multimodal knowledge distillation with the teacher's modality-level Gram matrix.

`import gramkd` loads nothing heavy: the loss functions (torch only) load on first use, and the
Lightning parts with the commands that need them, so that `gramkd --help` or a mistyped override
answers before torch is imported.
"""

from gramkd.lazy import lazy_exports

__version__ = "0.1.0"

_HOMES = {
    "gram_loss": "gramkd.distill.functional",
    "gram_matrix": "gramkd.distill.functional",
    "kd_loss": "gramkd.distill.functional",
    "rkd_angle_loss": "gramkd.distill.functional",
    "rkd_distance_loss": "gramkd.distill.functional",
    "similarity_preserving_loss": "gramkd.distill.functional",
    "keep_freed_memory": "gramkd.allocator",
}
__all__ = sorted(_HOMES)

__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
