import torch
from matplotlib.figure import Figure


def gram_heatmap_figure(teacher: torch.Tensor, student: torch.Tensor, names: list[str], title: str) -> Figure:
    """Teacher, student and their difference as three M×M heatmaps sharing one colour scale."""
    limit = float(max(teacher.abs().max(), student.abs().max(), 1e-6))
    figure = Figure(figsize=(3.2 * 3 + 1, 3.4), layout="constrained")
    axes = figure.subplots(1, 3)
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
