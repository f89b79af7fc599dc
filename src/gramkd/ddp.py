"""What Lightning's DDP needs from a Hydra app: a relaunch command for the other ranks, a clean exit."""

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import read_write


def relaunch_argv(argv0: str, command: str, overrides: list[str]) -> list[str]:
    """The command line Lightning's `ddp` launcher re-runs for ranks > 0, pinned to this job.

    Lightning appends `hydra.run.dir=<HydraConfig run.dir>` to `sys.argv`. Two things would go
    wrong: `run.dir` holds `${now:…}`, which re-resolves to a new folder, and under `-m` the
    command line is the whole sweep, so each rank would run a sweep of its own. So the job's own
    folder becomes `run.dir`, and under multirun the command becomes this one job's overrides.
    """
    if not HydraConfig.initialized():
        return [argv0, command, *overrides]
    hydra_cfg = HydraConfig.get()
    with read_write(hydra_cfg):
        hydra_cfg.run.dir = hydra_cfg.runtime.output_dir
    if hydra_cfg.mode == RunMode.MULTIRUN:
        return [argv0, command, *hydra_cfg.overrides.task]
    return [argv0, command, *overrides]


# Set in the launching process by Lightning's `ddp` launcher; left there, the next job of a sweep
# would think an outside launcher started it and wait for ranks that never come.
LAUNCHER_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


@contextmanager
def isolated_ddp_job() -> Iterator[None]:
    """Run one job so that the next job in this process starts from a clean DDP slate: the
    launcher's environment variables are restored and the process group is destroyed (gloo may
    otherwise abort at exit)."""
    before = {name: os.environ.get(name) for name in LAUNCHER_VARIABLES}
    try:
        yield
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
