import torch
from torch import nn

from gramkd.nets import MultimodalOutput


def single_modality_outputs(net: nn.Module, inputs: dict[str, torch.Tensor], present: dict[str, torch.Tensor]) -> MultimodalOutput:
    """`net` with one modality present at a time: row m of the result is modality m alone."""
    num = len(net.modality_names)
    return modality_subset_outputs(net, inputs, present, torch.eye(num, dtype=torch.bool))


def dropped_modality_outputs(net: nn.Module, inputs: dict[str, torch.Tensor], present: dict[str, torch.Tensor]) -> MultimodalOutput:
    """`net` with one modality dropped at a time: row m of the result is everything but modality m."""
    num = len(net.modality_names)
    return modality_subset_outputs(net, inputs, present, ~torch.eye(num, dtype=torch.bool))


def modality_subset_outputs(
    net: nn.Module, inputs: dict[str, torch.Tensor], present: dict[str, torch.Tensor], keep: torch.Tensor
) -> MultimodalOutput:
    """Run `net` on M variants of the batch in ONE forward over M·B rows; variant v keeps the
    modalities where `keep[v]` (a [M, M] bool) is True, among those the sample has. A net whose
    encoders each see one modality (`encode_modalities` + `fuse_tokens`: MultimodalNet) encodes the
    batch once and fuses the M variants; in training, the variants then share the encoders' dropout.

    Returns logits [B, M, C] (variant m), modality_features [B, M, D] (modality m's token in
    variant m), modality_mask [B, M] (the sample's own presence) and fused [B, M, H].
    """
    names = net.modality_names
    batch, num = len(present[names[0]]), len(names)
    keep = keep.to(present[names[0]].device)
    variant_present = {m: (keep[:, i : i + 1] & present[m].unsqueeze(0)).reshape(num * batch) for i, m in enumerate(names)}
    if hasattr(net, "encode_modalities"):  # encoders that see one modality each: encode once, fuse M times
        tokens = net.encode_modalities(inputs)
        out = net.fuse_tokens(tokens.repeat(num, 1, 1), torch.stack([variant_present[m] for m in names], dim=1))
    else:
        out = net({m: x.repeat(num, *([1] * (x.dim() - 1))) for m, x in inputs.items()}, variant_present)

    def by_variant(t: torch.Tensor) -> torch.Tensor:  # [M·B, ...] -> [B, M, ...]
        return t.reshape(num, batch, *t.shape[1:]).transpose(0, 1)

    own_token = by_variant(out.modality_features)[:, torch.arange(num), torch.arange(num)]
    mask = torch.stack([present[m] for m in names], dim=1)
    return MultimodalOutput(by_variant(out.logits), own_token, mask, by_variant(out.fused))
