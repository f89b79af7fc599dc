import lightning as L
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import Callback

from gramkd.errors import GramkdError


class SameConfigOnEveryRank(Callback):
    """Stops a DDP job whose ranks were launched with different configs (e.g. a sweep's values
    lost in a relaunch), before any step: every rank compares fingerprints and fails together,
    naming a setting that differs."""

    def __init__(self, fingerprint: int, flat_config: dict[str, str] | None = None):
        self.fingerprint, self.flat_config = fingerprint, flat_config or {}

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if trainer.world_size == 1:
            return
        mine = torch.tensor([self.fingerprint], dtype=torch.long, device=pl_module.device)
        everyone = trainer.strategy.all_gather(mine).flatten().tolist()
        if len(set(everyone)) == 1:
            return
        configs: list[dict] = [{} for _ in everyone]
        dist.all_gather_object(configs, self.flat_config)
        differing = sorted(key for key in set().union(*configs) if len({c.get(key, "<absent>") for c in configs}) > 1)
        if not differing:
            raise GramkdError(f"DDP ranks were launched with different configs (fingerprints {everyone}); check the relaunch command")
        key = differing[0]
        values = ", ".join(f"rank {rank}: {c.get(key, '<absent>')}" for rank, c in enumerate(configs))
        more = f" (and {len(differing) - 1} more)" if len(differing) > 1 else ""
        raise GramkdError(f"DDP ranks were launched with different configs: {key} differs ({values}){more}; check the relaunch command")
