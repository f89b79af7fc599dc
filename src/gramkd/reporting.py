import json
from pathlib import Path

from rich.console import Console
from rich.table import Table


TABLE_COLUMNS = ("acc", "f1", "auroc", "loss", "agreement", "gram_mse")


def write_metrics(path: Path, metrics: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(sorted(metrics.items())), indent=2) + "\n")


def print_metrics(title: str, metrics: dict) -> None:
    """The final figures of a run as a console table, one row per split."""
    order = {"train": 0, "val": 1, "test": 2}
    own = [k for k in metrics if k.count("/") == 1]  # "<split>/<figure>"; references and robustness have more parts
    splits = sorted({k.split("/")[0] for k in own if k.split("/")[1] in TABLE_COLUMNS}, key=lambda s: (order.get(s, 3), s))
    names = [n for n in TABLE_COLUMNS if any(k.endswith(f"/{n}") for k in own)]
    table = Table(title=title)
    table.add_column("split")
    for name in names:
        table.add_column(name, justify="right")
    for split in splits:
        table.add_row(split, *[_fmt(metrics.get(f"{split}/{n}")) for n in names])
    console = Console()
    console.print(table)
    extras = {k: v for k, v in metrics.items() if "/" not in k or k == "test/drop_mean/acc"}
    console.print("  ".join(f"{k}={_fmt(v)}" for k, v in extras.items()))


def _fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:,}" if isinstance(value, int) else f"{value:.4f}"


def print_comparison(runs: dict[str, dict]) -> None:
    """Runs side by side (one column each) on the figures they share, test split first."""
    keys = [k for k in ("test/acc", "test/f1", "test/agreement", "test/gram_mse", "test/drop_mean/acc", "val/acc", "params") if any(k in m for m in runs.values())]
    table = Table(title="side by side")
    table.add_column("metric")
    for name in runs:
        table.add_column(name, justify="right")
    for key in keys:
        table.add_row(key, *[_fmt(m.get(key)) for m in runs.values()])
    Console().print(table)
