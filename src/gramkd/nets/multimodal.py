import torch
from torch import nn

from gramkd.errors import GramkdError
from gramkd.nets.encoders import count_parameters, modality_encoder
from gramkd.nets.fusion import ConcatFusion, TransformerFusion
from gramkd.nets.output import MultimodalOutput

FUSIONS = ("transformer", "concat")


class MultimodalNet(nn.Module):
    """Per-modality encoders -> one token of `width` each -> fusion -> classification head.

    `modalities` maps names to row shapes (vectors `(D,)` or sequences `(T, D)`); their order is
    the order of `modality_features`. Teachers and students are this class at different sizes.
    `config` holds the constructor arguments so a checkpoint can rebuild the net.
    """

    def __init__(
        self,
        modalities: dict[str, tuple[int, ...]],
        num_classes: int,
        width: int = 64,
        fusion: str = "transformer",
        encoder_hidden: int | None = None,
        depth: int = 1,
        heads: int = 4,
        head_hidden: int | None = None,
        dropout: float = 0.1,
    ):
        super().__init__()
        if fusion not in FUSIONS:
            raise GramkdError(f"unknown fusion '{fusion}'; choose one of: {', '.join(FUSIONS)}")
        if not modalities:
            raise GramkdError("a MultimodalNet needs at least one modality")
        modalities = {name: tuple(int(s) for s in shape) for name, shape in modalities.items()}
        self.config = dict(
            modalities={k: list(v) for k, v in modalities.items()}, num_classes=num_classes, width=width, fusion=fusion,
            encoder_hidden=encoder_hidden, depth=depth, heads=heads, head_hidden=head_hidden, dropout=dropout,
        )
        self.modality_names = list(modalities)
        self.encoders = nn.ModuleDict({m: modality_encoder(s, width, encoder_hidden, dropout) for m, s in modalities.items()})
        if fusion == "transformer":
            self.fusion = TransformerFusion(len(modalities), width, depth, heads, dropout)
        else:
            self.fusion = ConcatFusion(len(modalities), width, head_hidden or width, dropout)
        self.head = nn.Linear(self.fusion.out_dim, num_classes)

    @property
    def num_parameters(self) -> int:
        return count_parameters(self)

    def forward(self, inputs: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None) -> MultimodalOutput:
        missing = [m for m in self.modality_names if m not in inputs]
        if missing:
            raise GramkdError(f"the batch lacks modality '{missing[0]}' that the net was built for ({', '.join(self.modality_names)})")
        batch = inputs[self.modality_names[0]].shape[0]
        device = inputs[self.modality_names[0]].device
        mask = torch.stack(
            [present[m] if present is not None else torch.ones(batch, dtype=torch.bool, device=device) for m in self.modality_names], dim=1
        )
        tokens = torch.stack([self.encoders[m](inputs[m]) for m in self.modality_names], dim=1)
        tokens = tokens * mask.unsqueeze(-1)
        fused, modality_features = self.fusion(tokens, mask)
        modality_features = modality_features * mask.unsqueeze(-1)
        return MultimodalOutput(self.head(fused), modality_features, mask, fused)
