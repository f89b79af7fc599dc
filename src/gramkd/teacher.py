"""Where the frozen teacher comes from, the first of these that is set:

- `teacher.pretrained`: `teacher.net` (a net node, or a name in conf/net/) built with
  `pretrained=PATH_OR_NAME` (Hugging Face `from_pretrained`), used as it is;
- `teacher.ckpt_path`: a gramkd checkpoint of any net class (it records how to rebuild its net),
  or a plain state_dict for `teacher.net` (default: the teacher experiment's net);
- `teacher.experiment`: that experiment trained once on the student's data and cached.

Either of the first two replaces an experiment's teacher; setting both of them is refused.
`teacher.layers` (hidden-state indices) makes any of them return `layer_features` for a Gram term
on several depths; it changes what the net returns, never its weights or what it learned.
"""

from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from gramkd.checkpoints import check_vocabulary, safe_load, without_net_prefix
from gramkd.config import available, compose, config_dir
from gramkd.errors import GramkdError, first_line
from gramkd.nets.build import instantiate_net, net_node

SOURCES = ("pretrained", "ckpt_path", "experiment")


def wants_teacher(cfg: DictConfig) -> bool:
    spec = cfg.get("teacher")
    return bool(spec) and any(spec.get(source) for source in SOURCES)


def teacher_source(spec: DictConfig) -> str:
    chosen = [source for source in SOURCES if spec.get(source)]
    if spec.get("pretrained") and spec.get("ckpt_path"):
        raise GramkdError("the teacher comes from one place: set teacher.pretrained or teacher.ckpt_path, not both")
    if chosen == ["pretrained"] and not spec.get("net"):
        raise GramkdError("teacher.pretrained needs teacher.net: the net that loads it, e.g. teacher.net=vilt_teacher")
    return chosen[0]


def teacher_run_config(cfg: DictConfig) -> DictConfig:
    """The teacher experiment's config, on the student's data (same split) with `teacher.data`'s
    settings on top (e.g. more training statements), with the teacher's seed."""
    spec = cfg.teacher
    teacher_cfg = compose("fit", [f"experiment={spec.experiment}", f"seed={spec.seed}", *spec.get("overrides", [])])
    with open_dict(teacher_cfg):
        teacher_cfg.data = OmegaConf.merge(cfg.data, spec.get("data") or {})  # its `${seed}` now resolves to the teacher's seed
        teacher_cfg.paths = cfg.paths
        teacher_cfg.trainer.accelerator = cfg.trainer.accelerator
    return teacher_cfg


def provide_teacher(cfg: DictConfig, datamodule, fit_cached: Callable[[DictConfig, str], object]) -> tuple[nn.Module, dict]:
    """(frozen-to-be teacher net, its test figures when gramkd trained it).

    `fit_cached(run_cfg, label)` trains a run once and returns its CachedRun (see run_cache)."""
    spec = cfg.teacher
    source, layers = teacher_source(spec), _layers(spec)
    if source == "pretrained":
        node = net_node(named_net(spec.net), datamodule, pretrained=str(spec.pretrained), layers=layers)
        return instantiate_net(node, "teacher"), {}
    if source == "ckpt_path":
        configured = net_node(named_net(spec.net), datamodule) if spec.get("net") else None
        if configured is None and spec.get("experiment"):
            configured = net_node(teacher_run_config(cfg).net, datamodule)
        return load_teacher(spec.ckpt_path, datamodule, configured, layers), {}
    run = fit_cached(teacher_run_config(cfg), f"teacher {spec.experiment}")
    return load_teacher(run.weights, datamodule, None, layers), run.metrics


def _layers(spec: DictConfig) -> list[int] | None:
    layers = spec.get("layers")
    return None if layers is None else [int(i) for i in layers]


def named_net(net: str | DictConfig) -> DictConfig:
    """`teacher.net` as a node: given inline, or by its name in the `net` config group."""
    if not isinstance(net, str):
        return net
    if net not in available("net"):
        raise GramkdError(f"unknown teacher.net '{net}'; choose one of: {', '.join(available('net'))}, or give a node with _target_")
    return OmegaConf.load(config_dir() / "net" / f"{net}.yaml")


def load_teacher(path: str | Path, datamodule, configured: dict | None, layers: list[int] | None = None) -> nn.Module:
    """A gramkd checkpoint, rebuilt from the net it records, or a plain state_dict for the
    `configured` net node; `layers` set, the net returns those depths as `layer_features`."""
    checkpoint = read_checkpoint(path)
    check_vocabulary(checkpoint, datamodule, f"teacher checkpoint {path}")
    node = (checkpoint.get("gramkd") or {}).get("net") or configured
    if node is None:
        raise GramkdError(f"teacher checkpoint {path} is a plain state_dict: set teacher.net to the net it belongs to")
    if layers is not None:
        node = {**node, "layers": layers}
    return load_weights(path, instantiate_net(node, "teacher"), checkpoint)


def read_checkpoint(path: str | Path) -> dict:
    checkpoint = safe_load(path, "teacher checkpoint", " (teacher.ckpt_path); set it to null to train the teacher")
    if not isinstance(checkpoint, dict):
        raise GramkdError(f"teacher checkpoint {path} is a {type(checkpoint).__name__}, not a state_dict or a gramkd checkpoint")
    return checkpoint


def load_weights(path: str | Path, net: nn.Module, checkpoint: dict | None = None) -> nn.Module:
    """Load a gramkd checkpoint or a plain state_dict (weights_only=True) into `net`."""
    checkpoint = read_checkpoint(path) if checkpoint is None else checkpoint
    saved = list(((checkpoint.get("gramkd") or {}).get("net") or {}).get("modalities") or [])
    if saved and saved != list(net.modality_names):
        raise GramkdError(f"teacher checkpoint {path} was trained on modalities {saved}, but the data has {list(net.modality_names)}")
    weights = checkpoint.get("state_dict", checkpoint)
    if any(k.startswith("net.") for k in weights):
        weights = without_net_prefix(weights)
    try:
        net.load_state_dict(weights)
    except RuntimeError as err:
        raise GramkdError(f"teacher checkpoint {path} does not match the configured teacher net: {_mismatch(err)}") from None
    return net


def _mismatch(err: RuntimeError) -> str:
    details = [line.strip() for line in str(err).splitlines()[1:] if line.strip()]
    return "; ".join(details)[:400] or first_line(err)
