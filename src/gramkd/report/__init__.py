"""`gramkd report DIR [DIR …]`: the jobs of multirun sweeps → one row per method, as tables and a plot.

Jobs are grouped by method: the `method` key of their config if there is one, else the overrides
that tell them apart (see `jobs.label_jobs`): under `experiment=<data>/ablation` that is the
`distill` option, with `none` shown as `scratch`. For every method: mean ± sample std over its jobs
of every test figure, its paired difference from the baseline (`kd`) in test accuracy (per seed,
95% paired-t interval) and the fraction of the teacher–scratch gap it recovers; the teacher's own
figures (`teacher/test/*` in the jobs' metrics) give a reference row.

Modules: `jobs` reads and labels the jobs, `table` aggregates them into rows, `stats` holds the
statistics; `cells`, `markdown`, `csv_file`, `plot` and `console` render. `metrics_file` reads and
writes the `metrics.json` of one run; `console` also prints a run's figures.
"""

from pathlib import Path

from gramkd.report.console import print_comparison, print_metrics, print_report
from gramkd.report.csv_file import write_csv
from gramkd.report.markdown import markdown
from gramkd.report.metrics_file import read_metrics, write_metrics
from gramkd.report.plot import plot
from gramkd.report.table import BASELINE, Report, collect

OUTPUT_FILES = ("results.md", "results.csv", "results.png")

__all__ = ["OUTPUT_FILES", "Report", "collect", "print_comparison", "print_metrics", "read_metrics", "report", "write_metrics"]


def report(directories: list[str | Path], out: str | Path | None = None, show: bool = True, baseline: str = BASELINE) -> Report:
    """Aggregate the jobs under `directories`; write results.md/.csv/.png into `out` (default:
    the first directory) and print the tables."""
    paths = [Path(d) for d in directories]
    result = collect(paths, baseline)
    target = Path(out) if out is not None else paths[0]
    target.mkdir(parents=True, exist_ok=True)
    md, table, picture = (target / name for name in OUTPUT_FILES)
    md.write_text(markdown(result))
    write_csv(result, table)
    plot(result, picture)
    if show:
        print_report(result, [md, table, picture])
    return result
