"""Jobs → one row per method (and one for the teacher): every figure over the method's jobs, its
paired difference from the baseline method and the fraction of the teacher–scratch gap it recovers."""

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from gramkd.errors import GramkdError
from gramkd.report import stats
from gramkd.report.jobs import SCRATCH, Job, find_jobs, label_jobs

TEACHER = "teacher"
BASELINE = "kd"  # the method every other is compared with, seed by seed
COMPARED_FIGURE = "test/acc"  # what the baseline comparison and the gap recovered are measured on
MAIN_FIGURES = ("test/acc", "test/f1", "test/auroc", "test/agreement", "test/gram_mse", "test/drop_mean/acc")
DROP_MEAN = "test/drop_mean/acc"


@dataclass
class Row:
    """One method (or the teacher): its figures over jobs, and how it compares."""

    method: str
    n: int
    values: dict[str, list[float]]  # figure -> one value per job
    diff: stats.PairedDifference | None = None  # from the baseline, in COMPARED_FIGURE
    gap_recovered: float | None = None

    def mean(self, figure: str) -> float | None:
        return stats.mean(self.values.get(figure) or [])

    def std(self, figure: str) -> float | None:
        return stats.sample_std(self.values.get(figure) or [])


@dataclass
class Report:
    rows: list[Row]  # the teacher first (when known), then the methods
    figures: list[str]  # in table order
    drop_figures: list[str]  # test/drop_<modality>/acc, in modality order
    baseline: str = BASELINE
    missing: list[str] = field(default_factory=list)  # one line per missing or failed job
    sources: list[Path] = field(default_factory=list)

    def row(self, method: str) -> Row | None:
        return next((r for r in self.rows if r.method == method), None)


def collect(directories: list[Path], baseline: str = BASELINE) -> Report:
    """Read the jobs under `directories` and aggregate them by method."""
    folders: list[list[Job]] = []
    for directory in directories:
        found = find_jobs(directory)
        if not found:
            raise GramkdError(
                f"no gramkd runs under {directory} (no job folder with .hydra/config.yaml); "
                "pass the multirun folder of a sweep, e.g. logs/mfeat/ablation/multiruns/<time>"
            )
        folders.append(found)
    jobs = [job for found in folders for job in found]
    label_jobs(jobs)
    finished = [job for job in jobs if job.metrics is not None]
    if not finished:
        where = ", ".join(str(d) for d in directories)
        raise GramkdError(f"none of the {len(jobs)} jobs under {where} has finished (no metrics.json in any of them); rerun the sweep")
    if baseline != BASELINE and baseline not in {job.method for job in finished}:
        methods = ", ".join(sorted({job.method for job in finished}))
        raise GramkdError(f"no finished job of method '{baseline}' to compare with; the methods are: {methods}")
    report = aggregate(finished, baseline)
    report.missing = [line for found in folders for line in missing_jobs(found)]
    report.sources = list(directories)
    return report


def missing_jobs(jobs: list[Job]) -> list[str]:
    """A line for every job without metrics.json, and for every seed a method lacks that others ran
    (within one sweep's jobs: a second folder may add seeds for some methods only)."""
    lines = [
        f"{job.method} seed {job.seed}: no metrics.json in {job.path} (failed or still running)" for job in jobs if job.metrics is None
    ]
    seeds_by_method: dict[str, set] = {}
    for job in jobs:
        seeds_by_method.setdefault(job.method, set()).add(job.seed)
    all_seeds = set().union(*seeds_by_method.values())
    for method, seeds in seeds_by_method.items():
        for seed in sorted(all_seeds - seeds, key=str):
            lines.append(f"{method} seed {seed}: no job folder (never started)")
    return lines


def aggregate(jobs: list[Job], baseline: str = BASELINE) -> Report:
    """One row per method (and the teacher) from finished jobs: the scratch student first, then the
    methods in the order their first job ran."""
    by_method: dict[str, list[Job]] = {}
    for job in sorted(jobs, key=lambda job: job.method != SCRATCH):  # stable: keeps the jobs' order
        by_method.setdefault(job.method, []).append(job)
    drop_figures = drop_figures_of(jobs)
    keys = {k for job in jobs for k in job.metrics}
    figures = [f for f in MAIN_FIGURES if f in keys] + drop_figures + (["wall_time_s"] if "wall_time_s" in keys else [])
    rows = [
        Row(m, len(group), {f: [job.metrics[f] for job in group if f in job.metrics] for f in figures}) for m, group in by_method.items()
    ]
    teacher = teacher_row(jobs, figures)
    scratch = next((row for row in rows if row.method == SCRATCH), None)
    scratch_value = scratch.mean(COMPARED_FIGURE) if scratch else None
    teacher_value = teacher.mean(COMPARED_FIGURE) if teacher else None
    for row in rows:
        if baseline in by_method:
            row.diff = stats.paired_difference(by_seed(by_method[row.method]), by_seed(by_method[baseline]))
        row.gap_recovered = stats.gap_recovered(row.mean(COMPARED_FIGURE), scratch_value, teacher_value)
    return Report(([teacher] if teacher else []) + rows, figures, drop_figures, baseline)


def by_seed(jobs: list[Job], figure: str = COMPARED_FIGURE) -> dict:
    """seed -> the jobs' mean `figure` (several jobs of one method with one seed are averaged)."""
    values: dict = {}
    for job in jobs:
        if figure in job.metrics:
            values.setdefault(job.seed, []).append(job.metrics[figure])
    return {seed: statistics.fmean(v) for seed, v in values.items()}


def drop_figures_of(jobs: list[Job]) -> list[str]:
    """test/drop_<modality>/acc of every modality dropped in some job, in the jobs' modality order
    (modalities no job names come after, by name)."""
    found = {key for job in jobs for key in job.metrics if key.startswith("test/drop_") and key.endswith("/acc") and key != DROP_MEAN}
    order = jobs[0].modalities()
    return sorted(found, key=lambda f: (order.index(modality_of(f)) if modality_of(f) in order else len(order), f))


def modality_of(drop_figure: str) -> str:
    """test/drop_<modality>/acc -> <modality>."""
    return drop_figure.removeprefix("test/drop_").removesuffix("/acc")


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
