import torch
from torch import nn


class TransformerFusion(nn.Module):
    """A CLS token plus the modality tokens (with modality embeddings) through a TransformerEncoder.

    Absent modalities are masked out as keys, so they cannot influence any other token.
    Returns (fused CLS [B, D], contextualised modality tokens [B, M, D]); `layers` returns the
    modality tokens at every depth as well, [B, depth + 1, M, D]: the input (with modality
    embeddings), then each layer's output, the last one normalised as the returned tokens are.
    """

    def __init__(self, num_modalities: int, width: int, depth: int, heads: int, dropout: float):
        super().__init__()
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.modality_embedding = nn.Parameter(torch.randn(1, num_modalities, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout, batch_first=True, norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.out_dim = width

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor, layers: bool = False):
        batch = tokens.shape[0]
        x = torch.cat([self.cls.expand(batch, -1, -1), tokens + self.modality_embedding], dim=1)
        keep = torch.cat([mask.new_ones(batch, 1), mask], dim=1)
        if not layers:
            x = self.norm(self.encoder(x, src_key_padding_mask=~keep))
            return x[:, 0], x[:, 1:]
        depths = [x]
        for layer in self.encoder.layers:
            depths.append(layer(depths[-1], src_key_padding_mask=~keep))
        depths[-1] = self.norm(depths[-1])
        x = depths[-1]
        return x[:, 0], x[:, 1:], torch.stack([d[:, 1:] for d in depths], dim=1)


class ConcatFusion(nn.Module):
    """Concatenate the modality tokens and mix them with an MLP. Tokens pass through unchanged."""

    def __init__(self, num_modalities: int, width: int, hidden: int, dropout: float):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(num_modalities * width, hidden), nn.GELU(), nn.Dropout(dropout))
        self.out_dim = hidden

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mlp(tokens.flatten(1)), tokens
