"""Every hash gramkd takes of a config or a net: what makes two runs, ranks or teachers the same."""

import hashlib
import json

import torch
from omegaconf import DictConfig, OmegaConf

import gramkd

# Settings that change how a run looks, not what it learns.
COSMETIC = {"paths", "logger", "hydra", "name", "test_after_fit", "optimized_metric", "compare_with", "keep_freed_memory"}
COSMETIC_TRAINER = {"enable_progress_bar", "enable_model_summary", "log_every_n_steps", "default_root_dir"}
COSMETIC_CALLBACKS = {"rich_progress_bar", "model_summary"}


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def run_key(cfg: DictConfig, ignore: tuple[str, ...] = ()) -> str:
    """A short hash of what determines a run's result: the resolved config less its cosmetic
    settings (and `ignore`), plus gramkd's version."""
    cfg = cfg.copy()
    cfg.paths.output_dir = "<run>"
    plain = OmegaConf.to_container(cfg, resolve=True)
    for key in (*COSMETIC, *ignore):
        plain.pop(key, None)
    for key in COSMETIC_TRAINER:
        plain.get("trainer", {}).pop(key, None)
    for key in COSMETIC_CALLBACKS:
        (plain.get("callbacks") or {}).pop(key, None)
    plain["gramkd_version"] = gramkd.__version__
    return _digest(plain)[:16]


def config_fingerprint(cfg: DictConfig) -> int:
    """A 60-bit fingerprint of the whole resolved config (what every rank of one job must share)."""
    return int(_digest(OmegaConf.to_container(cfg, resolve=True))[:15], 16)


def flat_config(cfg: DictConfig) -> dict[str, str]:
    """`{"a.b.c": value}` for every leaf of the resolved config, to name what differs between two."""
    flat: dict[str, str] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        else:
            flat[prefix] = json.dumps(value, sort_keys=True, default=str)

    walk("", OmegaConf.to_container(cfg, resolve=True))
    return flat


# Data settings that change the order or the loading of the rows, never a row (`seed` shuffles the
# training batches in every data config): the jobs of a sweep over seeds share one teacher cache.
ORDER_ONLY_DATA_KEYS = ("seed", "num_workers", "pin_memory")


def net_key(net: torch.nn.Module, data_config: dict) -> str:
    """Hash of what a frozen net's outputs per row depend on: its weights, its constructor
    arguments where it records them (`config`: e.g. the depths it returns) and the data's resolved
    config less its order-only settings."""
    rows = {k: v for k, v in data_config.items() if k not in ORDER_ONLY_DATA_KEYS}
    digest = hashlib.sha256(repr(sorted(rows.items())).encode())
    digest.update(repr(sorted((getattr(net, "config", None) or {}).items())).encode())
    for name, tensor in net.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]
