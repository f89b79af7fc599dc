"""The text of a report's tables, cell by cell: shared by the markdown file and the console."""

from collections.abc import Callable

from gramkd.report.jobs import SCRATCH
from gramkd.report.table import DROP_MEAN, Report, Row, modality_of

FIGURE_NAMES = {
    "test/acc": "acc",
    "test/f1": "macro-F1",
    "test/auroc": "AUROC",
    "test/agreement": "agreement",
    "test/gram_mse": "gram_mse",
    DROP_MEAN: "drop-one acc (mean)",
    "wall_time_s": "wall time (s)",
}

Column = tuple[str, Callable[[Row], str]]  # (header, row -> cell text)


def figure_label(figure: str) -> str:
    if figure in FIGURE_NAMES:
        return FIGURE_NAMES[figure]
    if figure.startswith("test/drop_") and figure.endswith("/acc"):
        return f"drop {modality_of(figure)}"
    return figure


def number(value: float | None, digits: int = 4, signed: bool = False) -> str:
    if value is None:
        return "—"
    if abs(value) < 0.5 * 10**-digits:
        value = 0.0  # no "-0.0000"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def mean_std(row: Row, figure: str) -> str:
    mean, std = row.mean(figure), row.std(figure)
    if mean is None:
        return "—"
    digits = 1 if figure == "wall_time_s" else 4
    return number(mean, digits) if std is None else f"{number(mean, digits)} ± {number(std, digits)}"


def diff_text(row: Row, baseline: str) -> str:
    if row.diff is None:
        return "—"
    if row.method == baseline:
        return "(baseline)"
    text = number(row.diff.mean, signed=True)
    if row.diff.low is not None:
        text += f" [{number(row.diff.low, signed=True)}, {number(row.diff.high, signed=True)}]"
    return text


def gap_text(row: Row) -> str:
    if row.method == SCRATCH and row.gap_recovered is not None:
        return "0% (by definition)"
    return "—" if row.gap_recovered is None else f"{100 * row.gap_recovered:.1f}%"


def main_columns(report: Report) -> list[Column]:
    columns = [("method", lambda r: r.method), ("n", lambda r: str(r.n))]
    for figure in report.figures:
        if figure not in report.drop_figures:
            columns.append((figure_label(figure), lambda r, f=figure: mean_std(r, f)))
    columns.append((f"Δ acc vs {report.baseline} [95% CI]", lambda r: diff_text(r, report.baseline)))
    columns.append(("gap recovered", gap_text))
    return columns


def robustness_columns(report: Report) -> list[Column]:
    columns = [("method", lambda r: r.method), ("all modalities", lambda r: mean_std(r, "test/acc"))]
    columns += [(figure_label(f), lambda r, f=f: mean_std(r, f)) for f in report.drop_figures]
    if DROP_MEAN in report.figures:
        columns.append(("mean", lambda r: mean_std(r, DROP_MEAN)))
    return columns
