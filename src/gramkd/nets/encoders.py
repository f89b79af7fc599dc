from torch import nn

from gramkd.errors import GramkdError
from gramkd.nets.contract import KINDS, ModalitySpec
from gramkd.nets.image_encoder import ImageEncoder
from gramkd.nets.token_encoder import TokenEncoder


def modality_encoder(
    spec: ModalitySpec,
    width: int,
    hidden: int | None,
    dropout: float,
    *,
    name: str = "",
    patch_size: int = 4,
    depth: int = 1,
    heads: int = 4,
) -> nn.Module:
    """Turns one modality's rows ([B, *spec.shape]) into one token of `width` ([B, width]).

    vector: an MLP; sequence: a per-step MLP, then the mean; image: patches through a small
    transformer (`patch_size`, `depth` layers of `heads` heads), then the mean; tokens: the same
    over token embeddings, padding masked. `name` is the modality's, for error messages.
    """
    if spec.kind == "vector":
        return _mlp(spec.shape[0], hidden, width, dropout)
    if spec.kind == "sequence":
        return SequenceEncoder(spec.shape[-1], width, hidden, dropout)
    if spec.kind == "image":
        return ImageEncoder(name, spec, width, hidden, dropout, patch_size=patch_size, depth=depth, heads=heads)
    if spec.kind == "tokens":
        return TokenEncoder(name, spec, width, hidden, dropout, depth=depth, heads=heads)
    raise GramkdError(f"modality '{name}' is of kind {spec.kind!r}, for which MultimodalNet has no encoder; use one of: {', '.join(KINDS)}")


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
