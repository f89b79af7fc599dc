"""A tiny module and a config check whose config depends on the rank, as after a lost relaunch."""

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from gramkd.rank_agreement import SameConfigOnEveryRank


class ConfigOfThisRank(SameConfigOnEveryRank):
    def setup(self, trainer, pl_module, stage):
        rank = trainer.global_rank
        self.fingerprint, self.flat_config = rank, {"seed": "0", "data.batch_size": str(64 + rank)}
        super().setup(trainer, pl_module, stage)


class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.zeros(4, 2)), batch_size=2)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)
