import math

from torch import nn


def modality_encoder(shape: tuple[int, ...], width: int, hidden: int | None, dropout: float) -> nn.Module:
    """Turns one modality's rows ([B, *shape]) into one token of `width` ([B, width])."""
    if len(shape) == 1:
        return _mlp(shape[0], hidden, width, dropout)
    return SequenceEncoder(shape[-1], width, hidden, dropout)


def _mlp(in_dim: int, hidden: int | None, out_dim: int, dropout: float) -> nn.Module:
    if hidden is None:
        return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU())
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim), nn.GELU())


class SequenceEncoder(nn.Module):
    """[B, *lead, D] -> [B, width]: a per-step MLP, then the mean over all leading positions."""

    def __init__(self, in_dim: int, width: int, hidden: int | None, dropout: float):
        super().__init__()
        self.step = _mlp(in_dim, hidden, width, dropout)

    def forward(self, x):
        return self.step(x.flatten(1, -2)).mean(1)


def count_parameters(module: nn.Module) -> int:
    return sum(math.prod(p.shape) for p in module.parameters())
