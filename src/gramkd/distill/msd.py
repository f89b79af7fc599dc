import torch

from gramkd.distill.functional import kd_loss
from gramkd.distill.step import DistillStep
from gramkd.distill.term import DistillationTerm


class ModalitySpecificDistillation(DistillationTerm):
    """MSD (Jin et al., arXiv 2101.01881): KD on the predictions made from each modality alone.

    `modality_weights` maps modality -> weight (missing ones count 0); None weighs all equally.
    The weighted mean of per-modality KD losses, each over the samples where it is present.
    """

    default_name = "msd"

    def __init__(self, temperature: float = 4.0, modality_weights: dict[str, float] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.temperature = temperature
        self.modality_weights = dict(modality_weights) if modality_weights else None

    def loss(self, step: DistillStep) -> torch.Tensor:
        student, teacher = step.single_modality("student"), step.single_modality("teacher")
        names = list(step.batch["present"])
        weights = self._weights(names, student.logits)
        per_modality = torch.stack(
            [kd_loss(student.logits[:, m], teacher.logits[:, m], self.temperature, mask=step.mask[:, m]) for m in range(len(names))]
        )
        return (weights * per_modality).sum() / weights.sum()

    def _weights(self, names: list[str], like: torch.Tensor) -> torch.Tensor:
        if self.modality_weights is None:
            return torch.ones(len(names), device=like.device)
        unknown = set(self.modality_weights) - set(names)
        if unknown:
            raise ValueError(f"msd.modality_weights names {sorted(unknown)}, which the data does not have ({', '.join(names)})")
        return torch.tensor([float(self.modality_weights.get(n, 0.0)) for n in names], device=like.device)
