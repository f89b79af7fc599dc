import lightning as L
import torch

from gramkd.distill.functional import kd_loss
from gramkd.distill.step import DistillStep
from gramkd.distill.term import DistillationTerm


class ModalitySpecificDistillation(DistillationTerm):
    """MSD (Jin et al., arXiv 2101.01881): KD on the predictions made from each modality alone.

    `modality_weights` maps modality -> weight (>= 0, not all 0; missing ones count 0); None
    weighs all equally. The loss is the weighted mean of the per-modality KD losses, each over the
    samples where its modality is present, over the modalities present somewhere in the batch (a
    modality absent from the whole batch does not dilute it). Modalities are the student network's
    (`modality_names`, in its order), learnt at `setup` (needed for `modality_weights` only).
    """

    default_name = "msd"

    def __init__(self, temperature: float = 4.0, modality_weights: dict[str, float] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.temperature = temperature
        self.modality_weights = {str(k): float(v) for k, v in modality_weights.items()} if modality_weights else None
        if self.modality_weights is not None:
            negative = {k: v for k, v in self.modality_weights.items() if not v >= 0}
            if negative:
                raise ValueError(f"msd.modality_weights must be >= 0; got {negative}")
            if not any(self.modality_weights.values()):
                raise ValueError(f"msd.modality_weights are all 0 ({self.modality_weights}): give at least one modality a positive weight")
        self._weights: torch.Tensor | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self.use_modalities(list(pl_module.modality_names))

    def use_modalities(self, names: list[str]) -> None:
        """The networks' modalities, in the order of their outputs (called at `setup`)."""
        if self.modality_weights is None:
            self._weights = torch.ones(len(names))
            return
        unknown = sorted(set(self.modality_weights) - set(names))
        if unknown:
            raise ValueError(f"msd.modality_weights names {unknown}, which the networks do not have ({', '.join(names)})")
        self._weights = torch.tensor([self.modality_weights.get(n, 0.0) for n in names])

    def loss(self, step: DistillStep) -> torch.Tensor:
        mask = step.mask
        if self._weights is None:
            if self.modality_weights is not None:
                raise RuntimeError("msd.modality_weights name modalities, but the term has not seen the networks' yet: set it up first")
            self._weights = torch.ones(mask.shape[1])
        student, teacher = step.single_modality("student").logits, step.single_modality("teacher").logits
        per_modality = torch.stack([kd_loss(student[:, m], teacher[:, m], self.temperature, mask=mask[:, m]) for m in range(mask.shape[1])])
        if self._weights.device != per_modality.device or self._weights.dtype != per_modality.dtype:
            self._weights = self._weights.to(per_modality)
        weights = torch.where(mask.any(0), self._weights, 0)  # modalities absent from the whole batch count 0
        total = weights.sum()
        return (weights * per_modality).sum() / torch.where(total > 0, total, 1)
