"""Tables on the console: a run's final figures, runs side by side, and a sweep's report."""

from pathlib import Path

from rich.console import Console
from rich.table import Table

from gramkd.report.cells import main_columns, robustness_columns
from gramkd.report.table import Report

RUN_COLUMNS = ("acc", "f1", "auroc", "loss", "agreement", "gram_mse")
COMPARED_KEYS = ("test/acc", "test/f1", "test/agreement", "test/gram_mse", "test/drop_mean/acc", "val/acc", "params")
SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}


def print_metrics(title: str, metrics: dict) -> None:
    """The final figures of a run as a console table, one row per split, then its other numbers."""
    own = [k for k in metrics if k.count("/") == 1]  # "<split>/<figure>"; references and robustness have more parts
    splits = sorted({k.split("/")[0] for k in own if k.split("/")[1] in RUN_COLUMNS}, key=lambda s: (SPLIT_ORDER.get(s, 3), s))
    names = [n for n in RUN_COLUMNS if any(k.endswith(f"/{n}") for k in own)]
    table = Table(title=title)
    table.add_column("split")
    for name in names:
        table.add_column(name, justify="right")
    for split in splits:
        table.add_row(split, *[_number(metrics.get(f"{split}/{n}")) for n in names])
    console = Console()
    console.print(table)
    extras = {k: v for k, v in metrics.items() if ("/" not in k or k == "test/drop_mean/acc") and _is_number(v)}
    console.print("  ".join(f"{k}={_number(v)}" for k, v in extras.items()))


def print_comparison(runs: dict[str, dict]) -> None:
    """Runs side by side (one column each) on the figures they share, test split first."""
    keys = [k for k in COMPARED_KEYS if any(k in m for m in runs.values())]
    table = Table(title="side by side")
    table.add_column("metric")
    for name in runs:
        table.add_column(name, justify="right")
    for key in keys:
        table.add_row(key, *[_number(m.get(key)) for m in runs.values()])
    Console().print(table)


def print_report(report: Report, written: list[Path]) -> None:
    """The report's tables, its missing jobs and the files written."""
    console = Console()
    if not console.is_terminal:  # a log file or a pipe: rich would squeeze the tables into 80 columns
        console = Console(width=240)
    tables = [("results by method (test split, mean ± std over seeds)", main_columns(report))]
    if report.drop_figures:
        tables.append(("robustness: one modality dropped", robustness_columns(report)))
    for title, columns in tables:
        table = Table(title=title)
        for i, (header, _) in enumerate(columns):
            table.add_column(header, justify="left" if i == 0 else "right")
        for row in report.rows:
            table.add_row(*[cell(row) for _, cell in columns])
        console.print(table)
    if report.missing:
        console.print(f"[yellow]{len(report.missing)} missing or failed job(s):[/yellow]")
        for line in report.missing:
            console.print(f"  {line}", highlight=False, soft_wrap=True)
    console.print("wrote " + ", ".join(str(p) for p in written), highlight=False, soft_wrap=True)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value) -> str:
    if value is None:
        return "-"
    return f"{value:,}" if isinstance(value, int) else f"{value:.4f}"
