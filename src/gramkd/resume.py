"""`ckpt_path=last`: continue the newest earlier run of the same experiment, in its own folder.

A resumed run carries on where it stopped: same folder, same checkpoints (so "best" is chosen
over all epochs, as in an uninterrupted run), same logs and W&B run. The new Hydra folder only
records where the run went (`resumed.txt`).
"""

from pathlib import Path

from omegaconf import DictConfig, open_dict

from gramkd.errors import GramkdError
from gramkd.identity import run_key

IDENTITY_FILE = "run_identity.txt"
NOT_IDENTITY = ("ckpt_path", "callbacks")  # resuming may add or drop callbacks; the run is the same


def run_identity(cfg: DictConfig) -> str:
    return run_key(cfg, ignore=NOT_IDENTITY)


def mark_run(cfg: DictConfig) -> None:
    """Record the run's identity in its folder, so a later `ckpt_path=last` can find it."""
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / IDENTITY_FILE).write_text(run_identity(cfg) + "\n")


def resume_run(cfg: DictConfig) -> str | None:
    """The checkpoint to start from. For `last`, also point `cfg.paths.output_dir` at the run it
    continues, so that everything it writes goes on in that folder."""
    requested = cfg.get("ckpt_path")
    if requested != "last":
        if requested and not Path(requested).is_file():
            raise GramkdError(f"ckpt_path {requested} does not exist; pass a checkpoint file, or ckpt_path=last to resume")
        return requested
    checkpoint = last_checkpoint(cfg)
    here, run_dir = Path(cfg.paths.output_dir), checkpoint.parent.parent
    here.mkdir(parents=True, exist_ok=True)
    (here / "resumed.txt").write_text(f"resumed {run_dir} from {checkpoint}\n")
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
    return str(checkpoint)


def last_checkpoint(cfg: DictConfig) -> Path:
    """The newest last.ckpt among earlier runs of `cfg.name` with this run's identity."""
    root, me, current = Path(cfg.paths.log_dir) / cfg.name, run_identity(cfg), Path(cfg.paths.output_dir).resolve()
    candidates = [
        marker.parent / "checkpoints" / "last.ckpt"
        for marker in root.rglob(IDENTITY_FILE)
        if marker.parent.resolve() != current and marker.read_text().strip() == me
    ]
    candidates = [c for c in candidates if c.is_file()]
    if not candidates:
        raise GramkdError(f"ckpt_path=last: no earlier run of {cfg.name} with this config left a last.ckpt under {root}")
    return max(candidates, key=lambda c: c.stat().st_mtime)
