"""results.png: accuracy by method (error bars: std over seeds), drop-one mean accuracy, and the
method × dropped-modality accuracy as a heatmap."""

import math
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from gramkd.report.cells import figure_label
from gramkd.report.table import DROP_MEAN, TEACHER, Report, Row

BARS = (("test/acc", "test accuracy"), (DROP_MEAN, "accuracy with one modality dropped (mean)"))


def plot(report: Report, path: Path) -> None:
    methods = [r for r in report.rows if r.method != TEACHER]
    teacher = report.row(TEACHER)
    panels = 3 if report.drop_figures else 1
    figure = Figure(figsize=(5.2 * panels + 1, 4.4), layout="constrained")
    axes = figure.subplots(1, panels, squeeze=False)[0]
    for ax, (key, title) in zip(axes, BARS[: min(panels, 2)]):
        bar_panel(ax, methods, teacher, key, title)
    if panels > 1:
        heatmap_panel(figure, axes[2], ([teacher] if teacher is not None else []) + methods, report.drop_figures)
    figure.savefig(path, dpi=110)


def bar_panel(ax: Axes, methods: list[Row], teacher: Row | None, key: str, title: str) -> None:
    means = [r.mean(key) or 0.0 for r in methods]
    stds = [r.std(key) or 0.0 for r in methods]
    ax.bar(range(len(methods)), means, yerr=stds, capsize=3, color="tab:blue", alpha=0.8)
    if teacher is not None and teacher.mean(key) is not None:
        ax.axhline(teacher.mean(key), color="black", linestyle="--", linewidth=1, label=f"teacher {teacher.mean(key):.3f}")
        ax.legend(loc="lower right")
    ax.set_xticks(range(len(methods)), [r.method for r in methods], rotation=35, ha="right")
    present = [m - s for m, s in zip(means, stds) if m] or [0.0]
    ax.set_ylim(max(0.0, min(present) - 0.05), 1.0)
    ax.set_ylabel(key)
    ax.set_title(title)


def heatmap_panel(figure: Figure, ax: Axes, rows: list[Row], drop_figures: list[str]) -> None:
    grid = [[r.mean(f) if r.mean(f) is not None else float("nan") for f in drop_figures] for r in rows]
    image = ax.imshow(grid, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(drop_figures)), [figure_label(f).removeprefix("drop ") for f in drop_figures], rotation=35, ha="right")
    ax.set_yticks(range(len(rows)), [r.method for r in rows])
    ax.set_xlabel("dropped modality")
    ax.set_title("test accuracy, one modality dropped")
    known = [v for values in grid for v in values if not math.isnan(v)] or [0.0]
    middle = (min(known) + max(known)) / 2
    for i, values in enumerate(grid):
        for j, value in enumerate(values):
            if not math.isnan(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color="white" if value < middle else "black")
    figure.colorbar(image, ax=ax, shrink=0.8)
