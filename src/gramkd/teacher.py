"""Where the frozen teacher comes from: a checkpoint the user names, or a cached training run."""

from pathlib import Path

from omegaconf import DictConfig, open_dict

from gramkd.checkpoints import safe_load, without_net_prefix
from gramkd.config import compose
from gramkd.errors import GramkdError, first_line
from gramkd.nets import MultimodalNet
from gramkd.run_cache import CachedRun, cached_fit


def teacher_run_config(cfg: DictConfig) -> DictConfig:
    """The teacher experiment's config, on the student's data (same split), with the teacher's seed."""
    spec = cfg.teacher
    teacher_cfg = compose("fit", [f"experiment={spec.experiment}", f"seed={spec.seed}", *spec.get("overrides", [])])
    with open_dict(teacher_cfg):
        teacher_cfg.data = cfg.data  # its `${seed}` now resolves to the teacher's seed
        teacher_cfg.paths = cfg.paths
        teacher_cfg.trainer.accelerator = cfg.trainer.accelerator
    return teacher_cfg


def provide_teacher(cfg: DictConfig, datamodule, build_net) -> tuple[MultimodalNet, dict]:
    """(frozen-to-be teacher net, its metrics) from `teacher.ckpt_path` or the run cache."""
    teacher_cfg = teacher_run_config(cfg)
    if cfg.teacher.ckpt_path:
        return load_teacher(cfg.teacher.ckpt_path, build_net(teacher_cfg.net, datamodule)), {}
    run: CachedRun = cached_fit(teacher_cfg, cfg.paths.cache_dir, f"teacher {cfg.teacher.experiment}")
    return load_teacher(run.weights, build_net(teacher_cfg.net, datamodule)), run.metrics


def load_teacher(path: str | Path, net: MultimodalNet) -> MultimodalNet:
    """Load a ClassifierModule checkpoint or a plain state_dict into `net` (weights_only=True)."""
    path = Path(path)
    checkpoint = safe_load(path, "teacher checkpoint", " (teacher.ckpt_path); set it to null to train the teacher")
    if not isinstance(checkpoint, dict):
        raise GramkdError(f"teacher checkpoint {path} is a {type(checkpoint).__name__}, not a state_dict or a gramkd checkpoint")
    _check_modalities(checkpoint, net, path)
    weights = checkpoint.get("state_dict", checkpoint)
    if any(k.startswith("net.") for k in weights):
        weights = without_net_prefix(weights)
    try:
        net.load_state_dict(weights)
    except RuntimeError as err:
        raise GramkdError(f"teacher checkpoint {path} does not match the configured teacher net: {_mismatch(err)}") from None
    return net


def _check_modalities(checkpoint: dict, net: MultimodalNet, path: Path) -> None:
    saved = (checkpoint.get("gramkd") or {}).get("net", {}).get("modalities")
    if saved is not None and list(saved) != net.modality_names:
        raise GramkdError(f"teacher checkpoint {path} was trained on modalities {list(saved)}, but the data has {net.modality_names}")


def _mismatch(err: RuntimeError) -> str:
    details = [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
    return "; ".join(details)[:400] or first_line(err)
