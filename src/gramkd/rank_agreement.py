import hashlib
import json

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf

from gramkd.errors import GramkdError


def config_fingerprint(cfg: DictConfig) -> int:
    """A 60-bit fingerprint of the resolved config (what every rank of one job must share)."""
    text = json.dumps(OmegaConf.to_container(cfg, resolve=True), sort_keys=True, default=str)
    return int(hashlib.sha256(text.encode()).hexdigest()[:15], 16)


class SameConfigOnEveryRank(Callback):
    """Stops a DDP job whose ranks were launched with different configs (e.g. a sweep's values
    lost in a relaunch), before any step: every rank compares fingerprints and fails together."""

    def __init__(self, fingerprint: int):
        self.fingerprint = fingerprint

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.world_size == 1:
            return
        mine = torch.tensor([self.fingerprint], dtype=torch.long, device=pl_module.device)
        everyone = trainer.strategy.all_gather(mine).flatten().tolist()
        if len(set(everyone)) > 1:
            raise GramkdError(f"DDP ranks were launched with different configs (fingerprints {everyone}); check the relaunch command")
