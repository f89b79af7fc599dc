from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassAUROC, MulticlassF1Score


def classification_metrics(num_classes: int, prefix: str) -> MetricCollection:
    """Accuracy and macro-F1 (plus AUROC for two classes), named `<prefix>acc` etc."""
    metrics = {
        "acc": MulticlassAccuracy(num_classes, average="micro"),
        "f1": MulticlassF1Score(num_classes, average="macro"),
    }
    if num_classes == 2:
        metrics["auroc"] = MulticlassAUROC(num_classes)
    return MetricCollection(metrics, prefix=prefix)
