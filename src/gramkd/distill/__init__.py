"""Distillation terms: pure loss functions (`functional`, torch only) and their Callback wrappers.

The wrappers load lazily so that `import gramkd` and `gramkd.distill.functional` stay free of Lightning.
"""

from gramkd.lazy import lazy_exports

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

__getattr__, __dir__ = lazy_exports(__name__, _WRAPPERS)
