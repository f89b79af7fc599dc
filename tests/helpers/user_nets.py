"""Nets a user might write: plain nn.Modules (not gramkd classes) that honour gramkd's contract."""

import torch
from torch import nn

from gramkd.nets.output import MultimodalOutput


class MeanFusionNet(nn.Module):
    """One linear encoder per vector modality, the mean of the present rows, a linear head."""

    def __init__(self, modalities: dict, num_classes: int, width: int = 16):
        super().__init__()
        self.modality_names, self.num_classes = list(modalities), num_classes
        self.encoders = nn.ModuleDict({m: nn.Linear(spec["shape"][0], width) for m, spec in modalities.items()})
        self.head = nn.Linear(width, num_classes)

    def forward(self, inputs, present=None):
        rows = torch.stack([torch.tanh(self.encoders[m](inputs[m])) for m in self.modality_names], dim=1)
        mask = (
            torch.stack([present[m] for m in self.modality_names], dim=1)
            if present is not None
            else torch.ones(rows.shape[:2], dtype=torch.bool)
        )
        rows = rows * mask.unsqueeze(-1)
        fused = rows.sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return MultimodalOutput(self.head(fused), rows, mask, fused)


class GatedTeacherNet(MeanFusionNet):
    """Another class (and width) for the teacher: a gate per modality before the mean."""

    def __init__(self, modalities: dict, num_classes: int, width: int = 32):
        super().__init__(modalities, num_classes, width)
        self.gates = nn.ParameterDict({m: nn.Parameter(torch.ones(width)) for m in modalities})

    def forward(self, inputs, present=None):
        gated = {m: x for m, x in inputs.items()}
        out = super().forward(gated, present)
        gates = torch.stack([self.gates[m] for m in self.modality_names])
        rows = out.modality_features * gates
        fused = rows.sum(1) / out.modality_mask.sum(1, keepdim=True).clamp(min=1)
        return MultimodalOutput(self.head(fused), rows, out.modality_mask, fused)


class ForgetfulNet(nn.Module):
    """Takes what gramkd passes but does not say which modalities and classes it has."""

    def __init__(self, modalities: dict, num_classes: int):
        super().__init__()
        self.head = nn.Linear(1, num_classes)
