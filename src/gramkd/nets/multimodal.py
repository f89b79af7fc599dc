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
    `layers=True` (transformer fusion) adds `layer_features`: the modality tokens entering the
    fusion and after each of its `depth` layers (for the Gram term's `source=layer_features`).
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
        layers: bool = False,
    ):
        arguments = dict(locals())
        super().__init__()
        if fusion not in FUSIONS:
            raise GramkdError(f"unknown fusion '{fusion}'; choose one of: {', '.join(FUSIONS)}")
        if not modalities:
            raise GramkdError("a MultimodalNet needs at least one modality")
        if not isinstance(layers, bool):  # a ViLT's hidden-state indices given to a MultimodalNet
            raise GramkdError(f"a MultimodalNet's layers is true or false (every depth of its fusion), not {layers!r}")
        if layers and fusion != "transformer":
            raise GramkdError("layers=true needs fusion=transformer: concat fusion has no depths to return")
        specs = modality_specs(modalities)
        self.config = constructor_config(arguments, specs)
        self.modality_names, self.num_classes, self.layers = list(specs), int(num_classes), layers
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
        return self.fuse_tokens(self.encode_modalities(inputs), mask)

    def encode_modalities(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, M, width]: each modality's token from its own encoder, whether present or not (an
        encoder sees only its modality, so variants of a batch that differ in presence share it)."""
        return torch.stack([self.encoders[m](inputs[m]) for m in self.modality_names], dim=1)

    def fuse_tokens(self, tokens: torch.Tensor, mask: torch.Tensor) -> MultimodalOutput:
        """The output from the encoders' tokens [B, M, width] and the presence mask [B, M]."""
        tokens = tokens.where(mask.unsqueeze(-1), 0)
        fused, modality_features, *depths = self.fusion(tokens, mask, layers=True) if self.layers else self.fusion(tokens, mask)
        modality_features = modality_features.where(mask.unsqueeze(-1), 0)
        layer_features = depths[0].where(mask[:, None, :, None], 0) if depths else None
        return MultimodalOutput(self.head(fused), modality_features, mask, fused, layer_features=layer_features, prefusion_features=tokens)
