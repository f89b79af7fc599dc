from dataclasses import dataclass

import torch


@dataclass
class MultimodalOutput:
    """What every gramkd network returns; distillation terms see nothing else.

    logits: [B, C]; modality_features: [B, M, D], one row per modality (zero where absent);
    modality_mask: [B, M] bool, True where the modality is present; fused: [B, H], the
    representation the head classifies.
    """

    logits: torch.Tensor
    modality_features: torch.Tensor
    modality_mask: torch.Tensor
    fused: torch.Tensor
