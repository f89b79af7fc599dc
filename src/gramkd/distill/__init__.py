"""Distillation terms: pure loss functions (`functional`, torch only) and their Callback wrappers.

The wrappers load lazily so that `import gramkd` and `gramkd.distill.functional` stay free of Lightning.
"""

import importlib

_WRAPPERS = {
    "DistillStep": "gramkd.distill.step",
    "DistillationTerm": "gramkd.distill.term",
    "GramDistillation": "gramkd.distill.gram",
    "KDDistillation": "gramkd.distill.kd",
    "ModalitySpecificDistillation": "gramkd.distill.msd",
    "RelationalKD": "gramkd.distill.relational",
    "SimilarityPreserving": "gramkd.distill.relational",
}
__all__ = list(_WRAPPERS)


def __getattr__(name: str):
    if name in _WRAPPERS:
        return getattr(importlib.import_module(_WRAPPERS[name]), name)
    raise AttributeError(f"module 'gramkd.distill' has no attribute {name!r}")
