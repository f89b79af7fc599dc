"""Where the Gram term takes its modality rows from: one ``[N, M, D]`` tensor per network and the
presence mask of its N rows (N = B, or B·L for rows at L depths)."""

import math

import torch

from gramkd.distill.functional.gram import GramMask
from gramkd.distill.step import DistillStep

SOURCES = ("modality_features", "prefusion_features", "layer_features", "modality_logits")


def uniform_layer_map(student_layers: int, teacher_layers: int) -> list[int]:
    """The teacher layer each student layer learns from, spread uniformly as in layer-mapping
    distillation (PKD, TinyBERT): the i-th of Ls student layers (from 1) takes the teacher's
    ⌈i·Lt/Ls⌉-th, so the last maps to the last. Indices into the layers each network returns."""
    return [math.ceil((i + 1) * teacher_layers / student_layers) - 1 for i in range(student_layers)]


class GramRowSource:
    """The rows of one `source`: `modality_features` (the networks' modality tokens after fusion),
    `prefusion_features` (each modality's encoder output before the modalities meet),
    `layer_features` (the tokens at several depths, [B, L, M, D]: student layer i against teacher
    layer `uniform_layer_map(Ls, Lt)[i]`, every mapped pair a sample of its own, so the loss is
    the mean over the mapped pairs) or `modality_logits` (MSD-style predictions from one modality
    at a time)."""

    def __init__(self, source: str):
        self.source = source
        self._layer_index: dict[tuple, torch.Tensor] = {}

    def student(self, step: DistillStep) -> torch.Tensor:
        if self.source == "modality_logits":
            return step.single_modality("student").logits
        return self.flat(self._field(step, "student"))

    def teacher(self, step: DistillStep) -> torch.Tensor:
        if self.source == "modality_logits":
            return step.single_modality("teacher").logits
        teacher = self._field(step, "teacher")
        if self.source == "layer_features":
            teacher = teacher.index_select(1, self._mapped_layers(step, teacher))
        return self.flat(teacher)

    def mask(self, step: DistillStep) -> GramMask:
        if self.source == "layer_features":
            return step.gram_mask.repeated(self._field(step, "student").shape[1])
        return step.gram_mask

    def per_sample(self, grams: torch.Tensor, batch: int) -> torch.Tensor:
        """Gram matrices of the flat rows, grouped by sample (for a per-row cache)."""
        return grams.unflatten(0, (batch, -1)) if self.source == "layer_features" else grams

    def flat(self, tensor: torch.Tensor) -> torch.Tensor:
        """Rows at L depths [B, L, ...] as L·B samples [B·L, ...] (the inverse of `per_sample`)."""
        return tensor.flatten(0, 1) if self.source == "layer_features" else tensor

    def _field(self, step: DistillStep, who: str) -> torch.Tensor:
        value = getattr(getattr(step, who), self.source)
        if value is None:
            hint = " (ViLT and CLIP adapters: set the net's `layers`)" if self.source == "layer_features" else ""
            raise ValueError(f"gram.source={self.source} needs the {who}'s {self.source}, which its network does not return{hint}")
        return value

    def _mapped_layers(self, step: DistillStep, teacher: torch.Tensor) -> torch.Tensor:
        key = (self._field(step, "student").shape[1], teacher.shape[1], teacher.device)
        if key not in self._layer_index:
            self._layer_index[key] = torch.tensor(uniform_layer_map(*key[:2]), device=teacher.device)
        return self._layer_index[key]
