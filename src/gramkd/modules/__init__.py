from gramkd.modules.classifier import ClassifierModule
from gramkd.modules.distill import DistillModule

__all__ = ["ClassifierModule", "DistillModule"]
