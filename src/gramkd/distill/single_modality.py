import torch
from torch import nn

from gramkd.nets import MultimodalOutput


def single_modality_outputs(net: nn.Module, inputs: dict[str, torch.Tensor], present: dict[str, torch.Tensor]) -> MultimodalOutput:
    """Run `net` with one modality present at a time, all M variants in ONE forward over M·B rows.

    Returns logits [B, M, C] (row m: the prediction from modality m alone), modality_features
    [B, M, D] (modality m's token in its own single-modality pass), modality_mask [B, M] (the
    sample's own presence) and fused [B, M, H].
    """
    names = net.modality_names
    batch, num = len(present[names[0]]), len(names)
    repeated = {m: x.repeat(num, *([1] * (x.dim() - 1))) for m, x in inputs.items()}
    only = torch.eye(num, dtype=torch.bool, device=present[names[0]].device)  # [M(variant), M(modality)]
    alone = {m: (only[:, i:i + 1] & present[m].unsqueeze(0)).reshape(num * batch) for i, m in enumerate(names)}
    out = net(repeated, alone)
    by_variant = lambda t: t.reshape(num, batch, *t.shape[1:]).transpose(0, 1)  # noqa: E731  [B, M(variant), ...]
    features = by_variant(out.modality_features)  # [B, variant, M, D]
    own_token = features[:, torch.arange(num), torch.arange(num)]  # [B, M, D]
    mask = torch.stack([present[m] for m in names], dim=1)
    return MultimodalOutput(by_variant(out.logits), own_token, mask, by_variant(out.fused))
