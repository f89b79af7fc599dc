import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from gramkd.distill.step import DistillStep


class DistillationTerm(Callback):
    """One named, weighted term of the distillation loss, configured and composed as a Callback.

    At `setup` the term registers itself with the DistillModule, which then adds
    `weight_at(epoch) * loss(step)` to the training loss and logs the raw value as
    `train/<name>`. Parameters a term owns (`learnable()`) become a submodule of the
    DistillModule, so they are optimised, wrapped by DDP and checkpointed with it.
    """

    default_name = "term"

    def __init__(self, weight: float = 1.0, warmup_epochs: int = 0, name: str | None = None):
        if weight < 0 or warmup_epochs < 0:
            raise ValueError(f"weight and warmup_epochs must be >= 0, got weight={weight}, warmup_epochs={warmup_epochs}")
        self.weight, self.warmup_epochs = float(weight), int(warmup_epochs)
        self.name = name or self.default_name

    def weight_at(self, epoch: int) -> float:
        """The weight, ramped linearly over the first `warmup_epochs` epochs (epoch 0 gets 1/warmup)."""
        if self.warmup_epochs == 0:
            return self.weight
        return self.weight * min(1.0, (epoch + 1) / self.warmup_epochs)

    def loss(self, step: DistillStep) -> torch.Tensor:
        raise NotImplementedError

    def learnable(self) -> nn.Module | None:
        """Parameters this term trains alongside the student (none by default)."""
        return None

    @property
    def state_key(self) -> str:
        return f"{type(self).__qualname__}[{self.name}]"

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        register = getattr(pl_module, "register_term", None)
        if register is None:
            raise TypeError(f"distillation term '{self.name}' needs a DistillModule, got {type(pl_module).__name__}")
        register(self)
