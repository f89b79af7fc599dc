"""Batch-relational distillation: Similarity-Preserving KD and Relational KD (distance, angle).

Each loss compares relations between the B samples of a batch, so student and teacher widths
may differ. Inputs with more than two dimensions are flattened to ``[B, -1]``.
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def similarity_preserving_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """Similarity-Preserving KD (Tung & Mori, 2019).

    Args:
        student: ``[B, Hs, ...]``.
        teacher: ``[B, Ht, ...]``.

    Returns:
        A scalar: ``||Gs - Gt||_F² / B²`` where ``G = F Fᵀ`` (``[B, B]``) with each row
        L2-normalised.
    """
    student, teacher = _as_batch_matrices(student, teacher)
    student_similarity = F.normalize(student @ student.T, dim=1)
    teacher_similarity = F.normalize(teacher @ teacher.T, dim=1)
    return (student_similarity - teacher_similarity).square().sum() / student.shape[0] ** 2


def rkd_distance_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """RKD distance loss (Park et al., 2019), as in the authors' code.

    Args:
        student: ``[B, Hs, ...]``.
        teacher: ``[B, Ht, ...]``.

    Returns:
        A scalar: smooth L1 (mean over the ``B × B`` entries) between the pairwise Euclidean
        distance matrices, each divided by the mean of its positive distances. A batch of one
        sample has no pair; it gives a zero that is still part of the autograd graph.
    """
    student, teacher = _as_batch_matrices(student, teacher)
    if student.shape[0] < 2:
        return (student * 0).sum()
    return F.smooth_l1_loss(_mean_normalized_distances(student), _mean_normalized_distances(teacher))


def rkd_angle_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """RKD angle loss (Park et al., 2019), as in the authors' code.

    Args:
        student: ``[B, Hs, ...]``.
        teacher: ``[B, Ht, ...]``.

    Returns:
        A scalar: smooth L1 (mean over the ``B³`` triplets) between the cosines of the angles
        that every triplet of embeddings forms.
    """
    student, teacher = _as_batch_matrices(student, teacher)
    return F.smooth_l1_loss(_triplet_cosines(student), _triplet_cosines(teacher))


def _pairwise_distances(embeddings: Tensor, eps: float = 1e-12) -> Tensor:
    """``[B, B]`` Euclidean distances; squared distances are clamped at eps before the sqrt."""
    squared_norms = embeddings.square().sum(dim=1)
    squared = squared_norms.unsqueeze(1) + squared_norms.unsqueeze(0) - 2 * embeddings @ embeddings.T
    off_diagonal = ~torch.eye(embeddings.shape[0], dtype=torch.bool, device=embeddings.device)
    return torch.where(off_diagonal, squared.clamp(min=eps).sqrt(), 0.0)


def _mean_normalized_distances(embeddings: Tensor) -> Tensor:
    distances = _pairwise_distances(embeddings)
    return distances / distances[distances > 0].mean()


def _triplet_cosines(embeddings: Tensor) -> Tensor:
    """``[B³]``: entry ``(a, b, c)`` is the cosine of the angle at ``x_a`` between ``x_b`` and ``x_c``."""
    directions = F.normalize(embeddings.unsqueeze(0) - embeddings.unsqueeze(1), p=2, dim=2)
    return torch.bmm(directions, directions.transpose(1, 2)).flatten()


def _as_batch_matrices(student: Tensor, teacher: Tensor) -> tuple[Tensor, Tensor]:
    if student.dim() < 2 or teacher.dim() < 2 or student.shape[0] != teacher.shape[0]:
        raise ValueError(
            "student and teacher must be [batch, ...] with the same batch size; "
            f"got student {tuple(student.shape)} and teacher {tuple(teacher.shape)}"
        )
    return student.flatten(start_dim=1), teacher.flatten(start_dim=1)
