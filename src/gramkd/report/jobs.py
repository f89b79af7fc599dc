"""The jobs of a sweep: job folders → config, overrides and metrics, and the method each job ran.

A job is a folder with `.hydra/config.yaml`; it finished when it has `metrics.json`.
"""

from dataclasses import dataclass
from pathlib import Path

import yaml

from gramkd.errors import GramkdError
from gramkd.report.metrics_file import read_metrics

SCRATCH = "scratch"  # the label of a job that distils nothing (distill=none)
IGNORED_KEYS = ("seed", "experiment")  # what every job of an ablation sweep has, or what pairs them


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

    def modalities(self) -> list[str]:
        """The run's modality names in batch order: `modalities` of metrics.json, or, for a metrics
        file written before that key existed, the names the data config gives."""
        if self.metrics and self.metrics.get("modalities"):
            return [str(name) for name in self.metrics["modalities"]]
        data = self.config.get("data") or {}
        names = data.get("views") or data.get("modalities") or []
        if not names and data.get("num_modalities"):
            names = [f"m{i}" for i in range(int(data["num_modalities"]))]
        return [str(name) for name in names]


def find_jobs(directory: Path) -> list[Job]:
    """Every job folder under `directory` (itself included), in the order Hydra numbered them."""
    if not directory.is_dir():
        raise GramkdError(f"{directory} is not a folder; pass the multirun folder of a sweep, e.g. logs/mfeat/ablation/multiruns/<time>")
    folders = [config.parent.parent for config in directory.rglob(".hydra/config.yaml") if ".submitit" not in config.parts]
    return [read_job(folder) for folder in sorted(folders, key=lambda folder: _numbers_as_numbers(folder.relative_to(directory)))]


def _numbers_as_numbers(path: Path) -> list[tuple[int, str]]:
    """A sort key that puts job 2 before job 10."""
    return [(int(part) if part.isdigit() else -1, part) for part in path.parts]


def read_job(path: Path) -> Job:
    config = _load_yaml(path / ".hydra" / "config.yaml") or {}
    overrides_file = path / ".hydra" / "overrides.yaml"
    overrides = [str(o) for o in (_load_yaml(overrides_file) or [])] if overrides_file.is_file() else []
    return Job(path, config, overrides, read_metrics(path / "metrics.json"))


def _load_yaml(path: Path):
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise GramkdError(f"cannot read {path}: {str(err).splitlines()[0]}") from None


def label_jobs(jobs: list[Job]) -> None:
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
