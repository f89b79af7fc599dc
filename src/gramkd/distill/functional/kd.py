"""Hinton-style knowledge distillation on logits."""

import torch
import torch.nn.functional as F
from torch import Tensor


def kd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    temperature: float = 4.0,
    mask: Tensor | None = None,
) -> Tensor:
    """``T² · KL(softmax(teacher / T) || softmax(student / T))``, summed over classes, averaged over rows.

    Args:
        student_logits: ``[B, C]``.
        teacher_logits: ``[B, C]``.
        temperature: T > 0; the T² factor keeps gradient magnitudes comparable across T.
        mask: ``[B]`` bool; only rows where it is True are averaged. None means all rows.

    Returns:
        A scalar; with mask None it equals
        ``F.kl_div(F.log_softmax(s / T, -1), F.softmax(t / T, -1), reduction="batchmean") * T²``.
        With no selected row it is a zero that is still part of the autograd graph.
    """
    if student_logits.dim() != 2 or student_logits.shape != teacher_logits.shape:
        raise ValueError(
            "student and teacher logits must both be [batch, classes] of the same shape; "
            f"got student {tuple(student_logits.shape)} and teacher {tuple(teacher_logits.shape)}"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be positive; got {temperature}")
    if mask is None:
        mask = torch.ones(student_logits.shape[0], dtype=torch.bool, device=student_logits.device)
    elif mask.shape != student_logits.shape[:1] or mask.dtype != torch.bool:
        raise ValueError(
            f"mask must be a bool tensor of shape {tuple(student_logits.shape[:1])} to match logits "
            f"{tuple(student_logits.shape)}; got {mask.dtype} of shape {tuple(mask.shape)}"
        )
    per_row = F.kl_div(
        F.log_softmax(student_logits / temperature, dim=-1),
        F.log_softmax(teacher_logits / temperature, dim=-1),
        reduction="none",
        log_target=True,
    ).sum(dim=-1)
    mean_over_rows = torch.where(mask, per_row, 0.0).sum() / mask.sum().clamp(min=1)
    return mean_over_rows * temperature**2
