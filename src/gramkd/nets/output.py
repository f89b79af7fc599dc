from dataclasses import dataclass, fields

import torch


@dataclass
class MultimodalOutput:
    """What every gramkd network returns; distillation terms see nothing else.

    logits: [B, C]; modality_features: [B, M, D], one row per modality (zero where absent);
    modality_mask: [B, M] bool, True where the modality is present.
    Optional: fused: [B, H], the representation the head classifies (SP and RKD need it);
    layer_features: [B, L, M, D], the modality rows at several depths (Gram `layers`);
    prefusion_features: [B, M, D], each modality's row before the modalities meet.
    """

    logits: torch.Tensor
    modality_features: torch.Tensor
    modality_mask: torch.Tensor
    fused: torch.Tensor | None = None
    layer_features: torch.Tensor | None = None
    prefusion_features: torch.Tensor | None = None

    def tensors(self) -> dict[str, torch.Tensor]:
        """The fields that are set, by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}
