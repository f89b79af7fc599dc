"""`gramkd report DIR [DIR …]`: the jobs of multirun sweeps → one row per method, as tables and a plot.

A job is a folder with `.hydra/config.yaml`; it finished when it has `metrics.json`. Jobs are
grouped by method: the `method` key of their config if there is one, else the overrides that tell
them apart (see `job_labels`): under `experiment=<data>/ablation` that is the `distill` option,
with `none` shown as `scratch`. For every method: mean ± sample std over its jobs of every test
figure, its paired difference from `kd` in test accuracy (per seed, 95% paired-t interval) and the
fraction of the teacher–scratch gap it recovers; the teacher's own figures (`teacher/test/*` in
the jobs' metrics) give a reference row.
"""

import csv
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from gramkd.errors import GramkdError

SCRATCH, TEACHER, BASELINE = "scratch", "teacher", "kd"
METHOD_ORDER = (SCRATCH, "kd", "msd", "gram", "kd_gram", "sp", "rkd", "gram_logits")
IGNORED_KEYS = ("seed", "experiment")  # what every job of an ablation sweep has, or what pairs them
MAIN_FIGURES = ("test/acc", "test/f1", "test/auroc", "test/agreement", "test/gram_mse", "test/drop_mean/acc")
FIGURE_NAMES = {
    "test/acc": "acc",
    "test/f1": "macro-F1",
    "test/auroc": "AUROC",
    "test/agreement": "agreement",
    "test/gram_mse": "gram_mse",
    "test/drop_mean/acc": "drop-one acc (mean)",
    "wall_time_s": "wall time (s)",
}
OUTPUT_FILES = ("results.md", "results.csv", "results.png")


@dataclass
class Job:
    path: Path
    config: dict
    overrides: list[str]
    metrics: dict | None  # None: the job did not finish (no metrics.json)
    method: str = ""

    @property
    def seed(self):
        return self.config.get("seed")


@dataclass
class Row:
    """One method (or the teacher): its figures over jobs, and how it compares."""

    method: str
    n: int
    values: dict[str, list[float]]  # figure -> one value per job
    diff: dict | None = None  # paired difference from kd in test acc: mean, low, high, n
    gap_recovered: float | None = None

    def mean(self, figure: str) -> float | None:
        values = self.values.get(figure) or []
        return statistics.fmean(values) if values else None

    def std(self, figure: str) -> float | None:
        values = self.values.get(figure) or []
        return statistics.stdev(values) if len(values) >= 2 else None


@dataclass
class Report:
    rows: list[Row]  # the teacher first (when known), then the methods
    figures: list[str]  # in table order
    drop_figures: list[str]  # test/drop_<modality>/acc, in modality order
    missing: list[str] = field(default_factory=list)  # one line per missing or failed job
    sources: list[Path] = field(default_factory=list)

    def row(self, method: str) -> Row | None:
        return next((r for r in self.rows if r.method == method), None)


# -- reading the jobs -------------------------------------------------------------------------
def find_jobs(directory: Path) -> list[Job]:
    """Every job folder under `directory` (itself included), in path order."""
    if not directory.is_dir():
        raise GramkdError(f"{directory} is not a folder; pass the multirun folder of a sweep, e.g. logs/mfeat/ablation/multiruns/<time>")
    configs = sorted(p for p in directory.rglob(".hydra/config.yaml") if ".submitit" not in p.parts)
    return [read_job(config.parent.parent) for config in configs]


def read_job(path: Path) -> Job:
    config = _load_yaml(path / ".hydra" / "config.yaml") or {}
    overrides_file = path / ".hydra" / "overrides.yaml"
    overrides = [str(o) for o in (_load_yaml(overrides_file) or [])] if overrides_file.is_file() else []
    metrics_file = path / "metrics.json"
    metrics = None
    if metrics_file.is_file():
        try:
            metrics = json.loads(metrics_file.read_text())
        except json.JSONDecodeError as err:
            raise GramkdError(f"{metrics_file} is not valid JSON ({err}); delete it or rerun that job") from None
    return Job(path, config, overrides, metrics)


def _load_yaml(path: Path):
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise GramkdError(f"cannot read {path}: {str(err).splitlines()[0]}") from None


def job_labels(jobs: list[Job]) -> None:
    """Name each job's method.

    The config's `method` key wins. Otherwise the label is made of the job's overrides other than
    `seed`, `experiment` and `hydra.*` that are not the same in every job, plus `distill` always:
    `distill=kd` reads `kd`, `distill=none` reads `scratch`, others read `key=value`. A job with no
    such override is named by its config's `name`.
    """
    parsed = [_split_overrides(job.overrides) for job in jobs]
    keys = {k for p in parsed for k in p}
    varying = {k for k in keys if len({p.get(k) for p in parsed}) > 1} | {"distill"}
    for job, overrides in zip(jobs, parsed):
        if job.config.get("method"):
            job.method = str(job.config["method"])
            continue
        parts = []
        for key, value in overrides.items():
            if key not in varying:
                continue
            if key == "distill":
                parts.insert(0, SCRATCH if value in ("none", "null", "[]") else value)
            else:
                parts.append(f"{key}={value}")
        job.method = " ".join(parts) or str(job.config.get("name", job.path.name))


def _split_overrides(overrides: list[str]) -> dict[str, str]:
    result = {}
    for override in overrides:
        key, _, value = override.partition("=")
        key = key.lstrip("+~")
        if key in IGNORED_KEYS or key.startswith("hydra"):
            continue
        result[key] = value
    return result


# -- aggregation ------------------------------------------------------------------------------
def collect(directories: list[Path]) -> Report:
    """Read the jobs under `directories` and aggregate them by method."""
    jobs: list[Job] = []
    for directory in directories:
        found = find_jobs(directory)
        if not found:
            raise GramkdError(
                f"no gramkd runs under {directory} (no job folder with .hydra/config.yaml); "
                "pass the multirun folder of a sweep, e.g. logs/mfeat/ablation/multiruns/<time>"
            )
        jobs += found
    job_labels(jobs)
    finished = [job for job in jobs if job.metrics is not None]
    if not finished:
        where = ", ".join(str(d) for d in directories)
        raise GramkdError(f"none of the {len(jobs)} jobs under {where} has finished (no metrics.json in any of them); rerun the sweep")
    report = aggregate(finished)
    report.missing = missing_jobs(jobs)
    report.sources = list(directories)
    return report


def missing_jobs(jobs: list[Job]) -> list[str]:
    """A line for every job without metrics.json, and for every seed a method lacks that others ran."""
    lines = [f"{job.method} seed {job.seed}: no metrics.json in {job.path} (failed or still running)" for job in jobs if job.metrics is None]
    seeds_by_method: dict[str, set] = {}
    for job in jobs:
        seeds_by_method.setdefault(job.method, set()).add(job.seed)
    all_seeds = set().union(*seeds_by_method.values())
    for method, seeds in seeds_by_method.items():
        for seed in sorted(all_seeds - seeds, key=str):
            lines.append(f"{method} seed {seed}: no job folder (never started)")
    return lines


def aggregate(jobs: list[Job]) -> Report:
    """One row per method (and the teacher) from finished jobs."""
    by_method: dict[str, list[Job]] = {}
    for job in jobs:
        by_method.setdefault(job.method, []).append(job)
    methods = sorted(by_method, key=_method_key)
    keys = {k for job in jobs for k in job.metrics}
    drop_figures = _drop_figures(jobs)
    figures = [f for f in MAIN_FIGURES if f in keys] + [f for f in drop_figures if f != "test/drop_mean/acc"] + (["wall_time_s"] if "wall_time_s" in keys else [])
    rows = [Row(m, len(by_method[m]), {f: [job.metrics[f] for job in by_method[m] if f in job.metrics] for f in figures}) for m in methods]
    teacher = teacher_row(jobs, figures)
    if teacher is not None:
        rows.insert(0, teacher)
    report = Report(rows, figures, [f for f in drop_figures if f != "test/drop_mean/acc"])
    baseline = by_method.get(BASELINE)
    for row in report.rows:
        if row.method == TEACHER:
            continue
        if baseline is not None:
            row.diff = paired_difference(by_method[row.method], baseline)
        row.gap_recovered = gap_recovered(row, report.row(SCRATCH), teacher)
    return report


def _method_key(method: str):
    return (METHOD_ORDER.index(method), "") if method in METHOD_ORDER else (len(METHOD_ORDER), method)


def _drop_figures(jobs: list[Job]) -> list[str]:
    """test/drop_<modality>/acc in the order the jobs' metrics (sorted) or configs give them."""
    found = []
    for job in jobs:
        for key in job.metrics:
            if key.startswith("test/drop_") and key.endswith("/acc") and key not in found:
                found.append(key)
    order = _modality_order(jobs)
    return sorted(found, key=lambda f: (f == "test/drop_mean/acc", order.index(f[10:-4]) if f[10:-4] in order else len(order), f))


def _modality_order(jobs: list[Job]) -> list[str]:
    data = jobs[0].config.get("data") or {}
    names = data.get("views") or data.get("modalities") or []
    if not names and data.get("num_modalities"):
        names = [f"m{i}" for i in range(int(data["num_modalities"]))]
    return [str(n) for n in names]


def teacher_row(jobs: list[Job], figures: list[str]) -> Row | None:
    """The teacher's test figures, once per distinct teacher (a sweep shares one)."""
    teachers = {}
    for job in jobs:
        figures_of_teacher = {k.removeprefix("teacher/"): v for k, v in job.metrics.items() if k.startswith("teacher/test/")}
        if figures_of_teacher:
            teachers[json.dumps(figures_of_teacher, sort_keys=True)] = figures_of_teacher
    if not teachers:
        return None
    distinct = list(teachers.values())
    return Row(TEACHER, len(distinct), {f: [t[f] for t in distinct if f in t] for f in figures})


def paired_difference(jobs: list[Job], baseline: list[Job], figure: str = "test/acc") -> dict | None:
    """mean and 95% CI of (method − baseline) in `figure`, paired by seed (paired t).

    Several jobs of one method with the same seed are averaged first. Seeds only one side has are
    left out. With one pair there is no interval (low = high = None).
    """
    ours, theirs = _by_seed(jobs, figure), _by_seed(baseline, figure)
    seeds = sorted(set(ours) & set(theirs), key=str)
    if not seeds:
        return None
    differences = [ours[s] - theirs[s] for s in seeds]
    mean = statistics.fmean(differences)
    low = high = None
    if len(differences) >= 2:
        half = t_quantile_975(len(differences) - 1) * statistics.stdev(differences) / math.sqrt(len(differences))
        low, high = mean - half, mean + half
    return {"mean": mean, "low": low, "high": high, "n": len(differences)}


def _by_seed(jobs: list[Job], figure: str) -> dict:
    values: dict = {}
    for job in jobs:
        if figure in job.metrics:
            values.setdefault(job.seed, []).append(job.metrics[figure])
    return {seed: statistics.fmean(v) for seed, v in values.items()}


def gap_recovered(row: Row, scratch: Row | None, teacher: Row | None) -> float | None:
    """(acc − scratch acc) / (teacher acc − scratch acc), on the means; None without both ends."""
    if scratch is None or teacher is None:
        return None
    acc, low, high = row.mean("test/acc"), scratch.mean("test/acc"), teacher.mean("test/acc")
    if acc is None or low is None or high is None or high == low:
        return None
    return (acc - low) / (high - low)


# Two-sided 95% quantiles of Student's t (t_{0.975, df}), for when scipy is not installed.
T_975 = {
    1: 12.706204736, 2: 4.302652730, 3: 3.182446305, 4: 2.776445105, 5: 2.570581836, 6: 2.446911851,
    7: 2.364624252, 8: 2.306004135, 9: 2.262157163, 10: 2.228138852, 11: 2.200985160, 12: 2.178812830,
    13: 2.160368656, 14: 2.144786688, 15: 2.131449546, 16: 2.119905299, 17: 2.109815578, 18: 2.100922040,
    19: 2.093024054, 20: 2.085963447, 21: 2.079613845, 22: 2.073873068, 23: 2.068657610, 24: 2.063898562,
    25: 2.059538553, 26: 2.055529439, 27: 2.051830516, 28: 2.048407142, 29: 2.045229642, 30: 2.042272456,
    40: 2.021075390, 60: 2.000297822, 120: 1.979930405,
}


def t_quantile_975(df: int) -> float:
    """t_{0.975} with `df` degrees of freedom: scipy's when installed, else the table above
    (linear in 1/df between its entries, 1.959964 as df → ∞)."""
    try:
        from scipy import stats
    except ImportError:
        return _t_table(df)
    return float(stats.t.ppf(0.975, df))


def _t_table(df: int) -> float:
    if df in T_975:
        return T_975[df]
    points = sorted(T_975.items()) + [(math.inf, 1.959963985)]
    for (d0, t0), (d1, t1) in zip(points, points[1:]):
        if d0 < df < d1:
            x, x0, x1 = 1 / df, 1 / d0, (0.0 if d1 == math.inf else 1 / d1)
            return t1 + (t0 - t1) * (x - x1) / (x0 - x1)
    raise ValueError(f"degrees of freedom must be >= 1, not {df}")


# -- output -----------------------------------------------------------------------------------
def figure_label(figure: str) -> str:
    if figure in FIGURE_NAMES:
        return FIGURE_NAMES[figure]
    if figure.startswith("test/drop_") and figure.endswith("/acc"):
        return f"drop {figure[10:-4]}"
    return figure


def _fmt(value: float | None, digits: int = 4, signed: bool = False) -> str:
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
    return _fmt(mean, digits) if std is None else f"{_fmt(mean, digits)} ± {_fmt(std, digits)}"


def diff_text(row: Row) -> str:
    if row.diff is None:
        return "—"
    if row.method == BASELINE:
        return "(baseline)"
    text = _fmt(row.diff["mean"], signed=True)
    if row.diff["low"] is not None:
        text += f" [{_fmt(row.diff['low'], signed=True)}, {_fmt(row.diff['high'], signed=True)}]"
    return text


def gap_text(row: Row) -> str:
    if row.method == SCRATCH and row.gap_recovered is not None:
        return "0% (by definition)"
    return "—" if row.gap_recovered is None else f"{100 * row.gap_recovered:.1f}%"


def main_columns(report: Report) -> list[tuple[str, callable]]:
    """(header, row -> text) of the main table."""
    columns = [("method", lambda r: r.method), ("n", lambda r: str(r.n))]
    for figure in report.figures:
        if figure not in report.drop_figures:
            columns.append((figure_label(figure), lambda r, f=figure: mean_std(r, f)))
    columns.append(("Δ acc vs kd [95% CI]", diff_text))
    columns.append(("gap recovered", gap_text))
    return columns


def robustness_columns(report: Report) -> list[tuple[str, callable]]:
    columns = [("method", lambda r: r.method), ("all modalities", lambda r: mean_std(r, "test/acc"))]
    columns += [(figure_label(f), lambda r, f=f: mean_std(r, f)) for f in report.drop_figures]
    if "test/drop_mean/acc" in report.figures:
        columns.append(("mean", lambda r: mean_std(r, "test/drop_mean/acc")))
    return columns


def markdown(report: Report) -> str:
    lines = [f"# Results: {', '.join(str(s) for s in report.sources)}", ""]
    lines += ["Mean ± sample std over the jobs (seeds) of each method; test split. "
              "Δ acc vs kd: mean paired difference (same seed) in test accuracy, with a 95% paired-t interval. "
              "Gap recovered: (acc − scratch) / (teacher − scratch) on the means. "
              "Wall time: the job's `wall_time_s` (build, fit and test); the job that trains the shared teacher includes it.", ""]
    lines += _md_table(main_columns(report), report.rows)
    if report.drop_figures:
        lines += ["", "## Robustness: test accuracy with one modality dropped (marked absent)", ""]
        lines += _md_table(robustness_columns(report), report.rows)
    lines += ["", "## Missing or failed jobs", ""]
    lines += [f"- {line}" for line in report.missing] or ["none"]
    return "\n".join(lines) + "\n"


def _md_table(columns, rows) -> list[str]:
    lines = ["| " + " | ".join(h for h, _ in columns) + " |", "|" + "|".join(" --- " if i == 0 else " ---: " for i in range(len(columns))) + "|"]
    lines += ["| " + " | ".join(cell(r) for _, cell in columns) + " |" for r in rows]
    return lines


def csv_rows(report: Report) -> tuple[list[str], list[list]]:
    """Full-precision figures: method, n, <figure>_mean/<figure>_std…, the kd difference, gap."""
    header = ["method", "n"]
    for figure in report.figures:
        header += [f"{figure}_mean", f"{figure}_std"]
    header += ["acc_diff_vs_kd", "acc_diff_vs_kd_ci_low", "acc_diff_vs_kd_ci_high", "acc_diff_vs_kd_pairs", "gap_recovered"]
    rows = []
    for row in report.rows:
        values = [row.method, row.n]
        for figure in report.figures:
            values += [row.mean(figure), row.std(figure)]
        diff = row.diff or {}
        values += [diff.get("mean"), diff.get("low"), diff.get("high"), diff.get("n"), row.gap_recovered]
        rows.append(["" if v is None else v for v in values])
    return header, rows


def write_csv(report: Report, path: Path) -> None:
    header, rows = csv_rows(report)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([[repr(v) if isinstance(v, float) else v for v in row] for row in rows])


def plot(report: Report, path: Path) -> None:
    """Accuracy by method (error bars: std over seeds), drop-one mean accuracy, and the
    method × dropped-modality accuracy as a heatmap."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [r for r in report.rows if r.method != TEACHER]
    teacher = report.row(TEACHER)
    panels = 3 if report.drop_figures else 1
    figure, axes = plt.subplots(1, panels, figsize=(5.2 * panels + 1, 4.4), constrained_layout=True, squeeze=False)
    axes = axes[0]
    bars = [("test/acc", "test accuracy"), ("test/drop_mean/acc", "accuracy with one modality dropped (mean)")][: min(panels, 2)]
    for ax, (key, title) in zip(axes, bars):
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
    if panels > 1:
        ax = axes[2]
        rows = ([teacher] if teacher is not None else []) + methods
        grid = [[r.mean(f) if r.mean(f) is not None else float("nan") for f in report.drop_figures] for r in rows]
        image = ax.imshow(grid, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(report.drop_figures)), [figure_label(f).removeprefix("drop ") for f in report.drop_figures], rotation=35, ha="right")
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
    figure.savefig(path, dpi=110)
    plt.close(figure)


def print_report(report: Report, written: list[Path]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # a log file or a pipe: rich would squeeze the tables into 80 columns
        console = Console(width=240)
    for title, columns in (("results by method (test split, mean ± std over seeds)", main_columns(report)), ("robustness: one modality dropped", robustness_columns(report))):
        if title.startswith("robustness") and not report.drop_figures:
            continue
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


def report(directories: list[str | Path], out: str | Path | None = None, show: bool = True) -> Report:
    """Aggregate the jobs under `directories`; write results.md/.csv/.png into `out` (default:
    the first directory) and print the tables."""
    paths = [Path(d) for d in directories]
    result = collect(paths)
    target = Path(out) if out is not None else paths[0]
    target.mkdir(parents=True, exist_ok=True)
    md, table, picture = (target / name for name in OUTPUT_FILES)
    md.write_text(markdown(result))
    write_csv(result, table)
    plot(result, picture)
    if show:
        print_report(result, [md, table, picture])
    return result
