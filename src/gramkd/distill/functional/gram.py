"""Modality-level Gram matrices and the loss that matches a student's to its teacher's."""

import torch
import torch.nn.functional as F
from torch import Tensor

GRAM_DISTANCES = ("mse", "smooth_l1")


def gram_matrix(features: Tensor, mask: Tensor | None = None, normalize: bool = True, center: bool = False) -> Tensor:
    """Per-sample Gram matrix of the modality rows.

    Args:
        features: ``[B, M, D]``, one D-dimensional row per modality.
        mask: ``[B, M]`` bool, True where the modality is present; None means all present.
        normalize: L2-normalise each row first, so that the entries are cosine similarities.
        center: first subtract each sample's mean over its present modality rows, so that a
            component shared by all modalities does not dominate the Gram matrix.

    Returns:
        ``[B, M, M]`` with ``G[b, i, j] = <f[b, i], f[b, j]>``, and 0 wherever modality i or j
        is absent. Absent rows neither change the result nor receive gradient, even when they
        hold inf or NaN.
    """
    _check_features(features, "features")
    if mask is not None:
        _check_mask(mask, features)
        features = torch.where(mask.unsqueeze(-1), features, 0.0)
    if center:
        features = _center(features, mask)
    if normalize:
        features = F.normalize(features, dim=-1)
    return features @ features.transpose(-1, -2)


def gram_loss(
    student_features: Tensor,
    teacher_features: Tensor,
    mask: Tensor | None = None,
    normalize: bool = True,
    exclude_diagonal: bool = False,
    distance: str = "mse",
    center: bool = False,
) -> Tensor:
    """Mean distance between student and teacher Gram matrices over the present modality pairs.

    Args:
        student_features: ``[B, M, Ds]``.
        teacher_features: ``[B, M, Dt]``; Dt may differ from Ds.
        mask: ``[B, M]`` bool, shared by both; pair ``(b, i, j)`` counts iff
            ``mask[b, i] and mask[b, j]``. None means all present.
        normalize: compare cosine Gram matrices (see :func:`gram_matrix`).
        exclude_diagonal: drop the pairs ``i == j``.
        distance: ``"mse"`` (squared difference) or ``"smooth_l1"`` (Huber, beta 1), elementwise.
        center: subtract each sample's mean modality row first (see :func:`gram_matrix`).

    Returns:
        A scalar. With no present pair it is a zero that is still part of the autograd graph.
    """
    _check_features(student_features, "student_features")
    _check_features(teacher_features, "teacher_features")
    if student_features.shape[:2] != teacher_features.shape[:2]:
        raise ValueError(
            "student and teacher features must agree in batch and modality sizes [B, M, ...]; "
            f"got student {tuple(student_features.shape)} and teacher {tuple(teacher_features.shape)}"
        )
    teacher_gram = gram_matrix(teacher_features, mask, normalize, center)
    return gram_loss_to_target(student_features, teacher_gram, mask, normalize, exclude_diagonal, distance, center)


def gram_loss_to_target(
    student_features: Tensor,
    teacher_gram: Tensor,
    mask: Tensor | None = None,
    normalize: bool = True,
    exclude_diagonal: bool = False,
    distance: str = "mse",
    center: bool = False,
) -> Tensor:
    """:func:`gram_loss` against a teacher Gram matrix ``[B, M, M]`` computed beforehand (with
    :func:`gram_matrix` and the same ``mask``, ``normalize`` and ``center``): for a frozen
    teacher whose Gram matrices are cached per sample."""
    if distance not in GRAM_DISTANCES:
        raise ValueError(f"unknown Gram distance {distance!r}; choose one of {GRAM_DISTANCES}")
    student_gram = gram_matrix(student_features, mask, normalize, center)
    if distance == "mse":
        elementwise = (student_gram - teacher_gram).square()
    else:
        elementwise = F.smooth_l1_loss(student_gram, teacher_gram, reduction="none", beta=1.0)
    pairs = _present_pairs(mask, student_gram, exclude_diagonal)
    return torch.where(pairs, elementwise, 0.0).sum() / pairs.sum().clamp(min=1)


def _center(features: Tensor, mask: Tensor | None) -> Tensor:
    if mask is None:
        return features - features.mean(dim=1, keepdim=True)
    weights = mask.unsqueeze(-1).to(features.dtype)
    mean = (features * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True).clamp(min=1)
    return torch.where(mask.unsqueeze(-1), features - mean, 0.0)


def _present_pairs(mask: Tensor | None, gram: Tensor, exclude_diagonal: bool) -> Tensor:
    """``[B, M, M]`` bool: True where both modalities of the pair are present."""
    batch_size, num_modalities, _ = gram.shape
    if mask is None:
        mask = torch.ones(batch_size, num_modalities, dtype=torch.bool, device=gram.device)
    pairs = mask.unsqueeze(2) & mask.unsqueeze(1)
    if exclude_diagonal:
        pairs = pairs & ~torch.eye(num_modalities, dtype=torch.bool, device=gram.device)
    return pairs


def _check_features(features: Tensor, name: str) -> None:
    if features.dim() != 3:
        raise ValueError(f"{name} must be [batch, modalities, dim]; got shape {tuple(features.shape)}")


def _check_mask(mask: Tensor, features: Tensor) -> None:
    if mask.shape != features.shape[:2]:
        raise ValueError(
            f"mask must have shape [batch, modalities] = {tuple(features.shape[:2])} to match features "
            f"{tuple(features.shape)}; got {tuple(mask.shape)}"
        )
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor; got dtype {mask.dtype}")
