import torch
from torch import nn

from gramkd.errors import GramkdError
from gramkd.nets.contract import ModalitySpec
from gramkd.nets.transformer_stack import transformer_stack


class ImageEncoder(nn.Module):
    """[B, C, H, W] normalised pixels -> [B, width].

    Non-overlapping patches (a Conv2d with stride = patch size) plus learned positions, a small
    pre-norm TransformerEncoder, then the mean over the patches.
    """

    def __init__(
        self, name: str, spec: ModalitySpec, width: int, hidden: int | None, dropout: float, *, patch_size: int, depth: int, heads: int
    ):
        super().__init__()
        if len(spec.shape) != 3:
            raise GramkdError(f"image modality '{name}' has row shape {list(spec.shape)}; an image row must be [C, H, W]")
        channels, height, breadth = spec.shape
        if patch_size < 1 or height % patch_size or breadth % patch_size:
            raise GramkdError(
                f"image modality '{name}' is {height}x{breadth}: set the net's patch_size to a number that divides both (now {patch_size})"
            )
        self.name, self.shape = name, spec.shape
        self.patches = nn.Conv2d(channels, width, kernel_size=patch_size, stride=patch_size)
        self.position = nn.Parameter(torch.randn(1, (height // patch_size) * (breadth // patch_size), width) * 0.02)
        self.encoder, self.norm = transformer_stack(width, hidden, depth, heads, dropout)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if tuple(images.shape[1:]) != self.shape:
            raise GramkdError(
                f"image modality '{self.name}' got rows of shape {list(images.shape[1:])}; the net was built for {list(self.shape)}"
            )
        x = self.patches(images).flatten(2).transpose(1, 2) + self.position
        return self.norm(self.encoder(x)).mean(1)
