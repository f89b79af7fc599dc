import torch
from torch import nn

from gramkd.errors import GramkdError
from gramkd.nets.contract import batch_presence, constructor_config, count_parameters, modality_specs
from gramkd.nets.encoders import modality_encoder
from gramkd.nets.fusion import ConcatFusion, TransformerFusion
from gramkd.nets.output import MultimodalOutput

FUSIONS = ("transformer", "concat")


class MultimodalNet(nn.Module):
    """Per-modality encoders -> one token of `width` each -> fusion -> classification head.

    `modalities` maps names to ModalitySpecs (or bare row shapes: vectors `(D,)`, sequences
    `(T, D)`); each kind gets its encoder (see `modality_encoder`; images and tokens use
    `patch_size`, `encoder_depth` layers and `heads`). Their order is the order of
    `modality_features`; `prefusion_features` holds the encoders' tokens before fusion.
    `config` holds the constructor arguments.
    """

    def __init__(
        self,
        modalities: dict,
        num_classes: int,
        width: int = 64,
        fusion: str = "transformer",
        encoder_hidden: int | None = None,
        depth: int = 1,
        heads: int = 4,
        head_hidden: int | None = None,
        dropout: float = 0.1,
        patch_size: int = 4,
        encoder_depth: int = 1,
    ):
        arguments = dict(locals())
        super().__init__()
        if fusion not in FUSIONS:
            raise GramkdError(f"unknown fusion '{fusion}'; choose one of: {', '.join(FUSIONS)}")
        if not modalities:
            raise GramkdError("a MultimodalNet needs at least one modality")
        specs = modality_specs(modalities)
        self.config = constructor_config(arguments, specs)
        self.modality_names, self.num_classes = list(specs), int(num_classes)
        sizes = dict(patch_size=patch_size, depth=encoder_depth, heads=heads)
        self.encoders = nn.ModuleDict({m: modality_encoder(s, width, encoder_hidden, dropout, name=m, **sizes) for m, s in specs.items()})
        if fusion == "transformer":
            self.fusion = TransformerFusion(len(modalities), width, depth, heads, dropout)
        else:
            self.fusion = ConcatFusion(len(modalities), width, head_hidden or width, dropout)
        self.head = nn.Linear(self.fusion.out_dim, num_classes)

    @property
    def num_parameters(self) -> int:
        return count_parameters(self)

    def forward(self, inputs: dict[str, torch.Tensor], present: dict[str, torch.Tensor] | None = None) -> MultimodalOutput:
        mask = batch_presence("net", self.modality_names, inputs, present)
        tokens = torch.stack([self.encoders[m](inputs[m]) for m in self.modality_names], dim=1)
        tokens = tokens.where(mask.unsqueeze(-1), 0)
        fused, modality_features = self.fusion(tokens, mask)
        modality_features = modality_features.where(mask.unsqueeze(-1), 0)
        return MultimodalOutput(self.head(fused), modality_features, mask, fused, prefusion_features=tokens)
