"""gramkd: multimodal knowledge distillation with the teacher's modality-level Gram matrix.

`import gramkd` loads nothing heavy: the loss functions (torch only) load on first use, and the
Lightning parts with the commands that need them, so that `gramkd --help` or a mistyped override
answers before torch is imported.
"""

import importlib

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


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'gramkd' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
