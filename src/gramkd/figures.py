"""Pictures of a run, sent to every logger that takes them and saved as PNGs in the run dir."""

from pathlib import Path

import lightning as L
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def confusion_matrix_figure(matrix: torch.Tensor, title: str) -> Figure:
    """A confusion matrix (rows: true class, columns: predicted) with its counts."""
    figure, ax = plt.subplots(figsize=(5, 4.4), constrained_layout=True)
    image = ax.imshow(matrix.numpy(), cmap="Blues")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if matrix.shape[0] <= 12:
        for i in range(matrix.shape[0]):
            for j in range(matrix.shape[1]):
                ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7)
    figure.colorbar(image, ax=ax, shrink=0.8)
    return figure


def log_figure(trainer: L.Trainer, key: str, figure: Figure, png: Path) -> None:
    """Send a figure to every logger that takes pictures, and save it as a PNG in the run dir."""
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png, dpi=100)
    for logger in trainer.loggers:
        kind = type(logger).__name__
        if kind == "WandbLogger":
            logger.log_image(key=key, images=[str(png)], step=trainer.global_step)
        elif kind == "TensorBoardLogger":
            logger.experiment.add_figure(key, figure, global_step=trainer.global_step)
    plt.close(figure)
