from torch import nn

from gramkd.errors import GramkdError


def transformer_stack(width: int, hidden: int | None, depth: int, heads: int, dropout: float) -> tuple[nn.TransformerEncoder, nn.LayerNorm]:
    """A pre-norm TransformerEncoder of `depth` layers and the LayerNorm that closes it."""
    if width % heads:
        raise GramkdError(f"the net's width ({width}) must be a multiple of its heads ({heads}): change width or heads")
    layer = nn.TransformerEncoderLayer(width, heads, hidden or 2 * width, dropout, batch_first=True, norm_first=True, activation="gelu")
    return nn.TransformerEncoder(layer, depth, enable_nested_tensor=False), nn.LayerNorm(width)
