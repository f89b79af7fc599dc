"""Where the frozen teacher comes from: a checkpoint the user names, or a cached training run."""

from pathlib import Path

import torch
from omegaconf import DictConfig, open_dict

from gramkd.config import compose
from gramkd.errors import GramkdError
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
    if not path.is_file():
        raise GramkdError(f"teacher checkpoint {path} does not exist (teacher.ckpt_path); set it to null to train the teacher")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise GramkdError(f"cannot load teacher checkpoint {path} safely (weights_only=True): {_first_line(err)}") from None
    if not isinstance(checkpoint, dict):
        raise GramkdError(f"teacher checkpoint {path} is a {type(checkpoint).__name__}, not a state_dict or a gramkd checkpoint")
    _check_modalities(checkpoint, net, path)
    weights = checkpoint.get("state_dict", checkpoint)
    if any(k.startswith("net.") for k in weights):
        weights = {k[4:]: v for k, v in weights.items() if k.startswith("net.")}
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
    return "; ".join(details)[:400] or _first_line(err)


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
