from pathlib import Path

import lightning as L
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def gram_heatmap_figure(teacher: torch.Tensor, student: torch.Tensor, names: list[str], title: str) -> Figure:
    """Teacher, student and their difference as three M×M heatmaps sharing one colour scale."""
    limit = float(max(teacher.abs().max(), student.abs().max(), 1e-6))
    figure, axes = plt.subplots(1, 3, figsize=(3.2 * 3 + 1, 3.4), constrained_layout=True)
    panels = (("teacher", teacher), ("student", student), ("student − teacher", student - teacher))
    for ax, (label, matrix) in zip(axes, panels):
        image = ax.imshow(matrix.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
        ax.set_title(label)
        ax.set_xticks(range(len(names)), names, rotation=45)
        ax.set_yticks(range(len(names)), names)
        if len(names) <= 8:
            for i in range(len(names)):
                for j in range(len(names)):
                    ax.text(j, i, f"{float(matrix[i, j]):.2f}", ha="center", va="center", fontsize=7)
    figure.colorbar(image, ax=axes, shrink=0.8)
    figure.suptitle(f"mean modality Gram matrix ({title})")
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
