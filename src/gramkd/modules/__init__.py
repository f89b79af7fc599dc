from gramkd.modules.classifier import ClassifierModule

__all__ = ["ClassifierModule"]
