"""results.csv: every figure of the report at full precision, one row per method."""

import csv
from pathlib import Path

from gramkd.report.table import Report


def csv_rows(report: Report) -> tuple[list[str], list[list]]:
    """method, n, <figure>_mean/<figure>_std…, the baseline difference, gap recovered."""
    compared = f"acc_diff_vs_{report.baseline}"
    header = ["method", "n"]
    for figure in report.figures:
        header += [f"{figure}_mean", f"{figure}_std"]
    header += [compared, f"{compared}_ci_low", f"{compared}_ci_high", f"{compared}_pairs", "gap_recovered"]
    rows = []
    for row in report.rows:
        values = [row.method, row.n]
        for figure in report.figures:
            values += [row.mean(figure), row.std(figure)]
        diff = row.diff
        values += [diff.mean, diff.low, diff.high, diff.n] if diff else [None] * 4
        values.append(row.gap_recovered)
        rows.append(["" if v is None else v for v in values])
    return header, rows


def write_csv(report: Report, path: Path) -> None:
    header, rows = csv_rows(report)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([[repr(v) if isinstance(v, float) else v for v in row] for row in rows])
