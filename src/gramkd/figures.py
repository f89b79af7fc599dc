"""Pictures of a run, sent to every logger that takes them and saved as PNGs in the run dir.

Figures are plain `matplotlib.figure.Figure` objects: no pyplot, so no GUI backend is chosen and
no global figure list has to be closed."""

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from matplotlib.figure import Figure


def confusion_matrix_figure(matrix: torch.Tensor, title: str) -> Figure:
    """A confusion matrix (rows: true class, columns: predicted) with its counts."""
    figure = Figure(figsize=(5, 4.4), layout="constrained")
    ax = figure.subplots()
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
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[str(png)], step=trainer.global_step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_figure(key, figure, global_step=trainer.global_step, close=False)
