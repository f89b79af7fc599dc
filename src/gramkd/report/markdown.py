"""results.md: the report's tables and its missing jobs, as markdown."""

from gramkd.report.cells import Column, main_columns, robustness_columns
from gramkd.report.table import Report, Row

LEGEND = (
    "Mean ± sample std over the jobs (seeds) of each method; test split. "
    "Δ acc vs {baseline}: mean paired difference (same seed) in test accuracy, with a 95% paired-t interval. "
    "Gap recovered: (acc − scratch) / (teacher − scratch) on the means. "
    "Wall time: the job's `wall_time_s` (build, fit and test); the job that trains the shared teacher includes it."
)


def markdown(report: Report) -> str:
    lines = [f"# Results: {', '.join(str(s) for s in report.sources)}", ""]
    lines += [LEGEND.format(baseline=report.baseline), ""]
    lines += table(main_columns(report), report.rows)
    if report.drop_figures:
        lines += ["", "## Robustness: test accuracy with one modality dropped (marked absent)", ""]
        lines += table(robustness_columns(report), report.rows)
    lines += ["", "## Missing or failed jobs", ""]
    lines += [f"- {line}" for line in report.missing] or ["none"]
    return "\n".join(lines) + "\n"


def table(columns: list[Column], rows: list[Row]) -> list[str]:
    header = "| " + " | ".join(h for h, _ in columns) + " |"
    alignment = "|" + "|".join(" --- " if i == 0 else " ---: " for i in range(len(columns))) + "|"
    return [header, alignment] + ["| " + " | ".join(cell(r) for _, cell in columns) + " |" for r in rows]
