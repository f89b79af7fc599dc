"""Modality-level Gram matrices and the loss that matches a student's to its teacher's.

At the sizes distillation runs them ([B, M, M] with M a handful of modalities) these functions are
bound by the number of tensor operations, not by arithmetic: what depends on the presence mask
alone is prepared once per batch (`GramMask`) and shared by both Gram matrices and the loss, and
nothing is masked when every modality is present.

The loss, by default: with the cosine Gram (``normalize``) the diagonal is left out, since it is 1
on both sides (0 for a row that centring empties) and would only dilute the loss by a share that
depends on how many modalities a sample has; each sample's mean over its pairs counts once, so a
sample with k modalities weighs no more than one with two.
"""

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from gramkd.distill.functional import gram_all_present
from gramkd.distill.functional.gram_all_present import NORM_EPS, autocast_off
from gramkd.distill.functional.gram_mask import GRAM_REDUCTIONS, GramMask, constant

__all__ = ["GRAM_DISTANCES", "GRAM_REDUCTIONS", "GramMask", "gram_loss", "gram_loss_to_target", "gram_matrix"]

GRAM_DISTANCES = ("mse", "smooth_l1")


def gram_matrix(features: Tensor, mask: "Tensor | GramMask | None" = None, normalize: bool = True, center: bool = False) -> Tensor:
    """Per-sample Gram matrix of the modality rows.

    Args:
        features: ``[B, M, D]``, one D-dimensional row per modality.
        mask: ``[B, M]`` bool, True where the modality is present (or a :class:`GramMask` of one);
            None means all present.
        normalize: L2-normalise each row first, so that the entries are cosine similarities.
        center: first subtract each sample's mean over its present modality rows, so that a
            component shared by all modalities does not dominate the Gram matrix.

    Returns:
        ``[B, M, M]`` with ``G[b, i, j] = <f[b, i], f[b, j]>``, and 0 wherever modality i or j
        is absent. Absent rows neither change the result nor receive gradient, even when they
        hold inf or NaN.
    """
    _check_features(features, "features")
    rows = _GramRows.of(features, GramMask.of(mask, features), normalize, center).rows
    return torch.bmm(rows, rows.transpose(1, 2))


class _GramRows:
    """The rows a Gram matrix multiplies: masked, centred, normalised as asked (`rows`), with
    what the gradient of :class:`_GramLossToTarget` needs (the norms)."""

    def __init__(self, rows: Tensor, norm: Tensor | None = None):
        self.rows, self.norm = rows, norm

    @classmethod
    def of(cls, features: Tensor, mask: GramMask, normalize: bool, center: bool) -> "_GramRows":
        # in place where nothing records the operations (no_grad, an autograd Function's
        # forward) on tensors made here: the same bits, with one [B, M, D] buffer fewer to touch
        in_place = not (torch.is_grad_enabled() and features.requires_grad)
        if mask.all_present:
            return cls(*gram_all_present.rows_of(features, normalize, center, in_place))
        rows = mask.keep_rows(features)
        if center:
            rows = _centred(rows, mask)
        if not normalize:
            return cls(rows)
        norm = torch.linalg.vector_norm(rows, dim=-1, keepdim=True)
        norm = norm.clamp_min_(NORM_EPS) if in_place else norm.clamp_min(NORM_EPS)
        return cls(rows.div_(norm) if in_place else rows / norm, norm)


def _centred(rows: Tensor, mask: GramMask) -> Tensor:
    """`rows` less each sample's mean over its present rows (absent rows stay zero)."""
    return mask.keep_rows(rows - rows.sum(1, keepdim=True) / mask.rows_present(rows))


def gram_loss(
    student_features: Tensor,
    teacher_features: Tensor,
    mask: "Tensor | GramMask | None" = None,
    normalize: bool = True,
    exclude_diagonal: bool | None = None,
    distance: str = "mse",
    center: bool = False,
    reduction: str = "sample",
) -> Tensor:
    """Mean distance between student and teacher Gram matrices over the present modality pairs.

    Args:
        student_features: ``[B, M, Ds]``.
        teacher_features: ``[B, M, Dt]``; Dt may differ from Ds.
        mask: ``[B, M]`` bool, shared by both (or a :class:`GramMask` of one); pair ``(b, i, j)``
            counts iff ``mask[b, i] and mask[b, j]``. None means all present.
        normalize: compare cosine Gram matrices (see :func:`gram_matrix`).
        exclude_diagonal: drop the pairs ``i == j``. None (the default): drop them iff
            ``normalize``, where they are 1 on both sides and carry nothing.
        distance: ``"mse"`` (squared difference) or ``"smooth_l1"`` (Huber, beta 1), elementwise.
        center: subtract each sample's mean modality row first (see :func:`gram_matrix`).
        reduction: ``"sample"``: the mean over each sample's pairs, then the mean over the samples
            that have a pair (each counts once); ``"pair"``: the mean over every pair of the batch
            (a sample with k modalities weighs about k²). The same when all modalities are present.

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
    options = gram_loss_options(normalize, exclude_diagonal, distance, center, reduction)
    return prepared_gram_loss(student_features, None, GramMask.of(mask, student_features), options, teacher_features)


def gram_loss_to_target(
    student_features: Tensor,
    teacher_gram: Tensor,
    mask: "Tensor | GramMask | None" = None,
    normalize: bool = True,
    exclude_diagonal: bool | None = None,
    distance: str = "mse",
    center: bool = False,
    reduction: str = "sample",
) -> Tensor:
    """:func:`gram_loss` against a teacher Gram matrix ``[B, M, M]`` computed beforehand (with
    :func:`gram_matrix` and the same ``mask``, ``normalize`` and ``center``): for a frozen
    teacher whose Gram matrices are cached per sample."""
    _check_features(student_features, "student_features")
    options = gram_loss_options(normalize, exclude_diagonal, distance, center, reduction)
    return prepared_gram_loss(student_features, teacher_gram, GramMask.of(mask, student_features), options)


def gram_loss_options(normalize: bool, exclude_diagonal: bool | None, distance: str, center: bool, reduction: str) -> tuple:
    """The options of :func:`gram_loss`, checked and resolved once, for :func:`prepared_gram_loss`."""
    if distance not in GRAM_DISTANCES:
        raise ValueError(f"unknown Gram distance {distance!r}; choose one of {GRAM_DISTANCES}")
    if reduction not in GRAM_REDUCTIONS:
        raise ValueError(f"unknown Gram reduction {reduction!r}; choose one of {GRAM_REDUCTIONS}")
    exclude_diagonal = normalize if exclude_diagonal is None else bool(exclude_diagonal)
    return (bool(normalize), exclude_diagonal, distance == "mse", bool(center), reduction == "sample")


def prepared_gram_loss(
    student_features: Tensor, teacher_gram: Tensor | None, mask: GramMask, options: tuple, teacher_features: Tensor | None = None
) -> Tensor:
    """:func:`gram_loss_to_target` with nothing left to check: a :class:`GramMask` of the student's
    features and options from :func:`gram_loss_options` (a term's per-step call). With
    `teacher_gram` None it is :func:`gram_loss` against `teacher_features`, whose Gram matrix is
    then made inside the loss's autograd node unless gradient must reach them."""
    if teacher_gram is None and teacher_features.requires_grad and torch.is_grad_enabled():
        teacher_gram, teacher_features = gram_matrix(teacher_features, mask, options[0], options[3]), None
    return _GramLossToTarget.apply(student_features, teacher_gram, mask, options, teacher_features)


class _GramLossToTarget(torch.autograd.Function):
    """:func:`gram_loss_to_target` as one autograd node. Its forward runs the very operations of
    :func:`gram_matrix` and the loss and then, when an input needs it, the gradient written out
    (a dozen operations where autograd would replay the forward's forty), while the forward's
    tensors are still in the cache: the loss is a scalar, so its backward only scales that
    gradient by the incoming one."""

    @staticmethod
    def forward(ctx, features, teacher_gram, mask: GramMask, options: tuple, teacher_features):
        ctx.set_materialize_grads(False)
        # tensors made here, neither inputs nor outputs: kept on ctx, not saved for backward
        if mask.all_present:
            loss, ctx.gradients, ctx.scale = gram_all_present.loss_and_gradients(
                ctx.needs_input_grad[:2], features, teacher_gram, teacher_features, options
            )
            return loss
        normalize, exclude_diagonal, mse, center, per_sample = options
        if teacher_gram is None:
            teacher = _GramRows.of(teacher_features, mask, normalize, center).rows
            teacher_gram = torch.bmm(teacher, teacher.transpose(1, 2))
        rows = _GramRows.of(features, mask, normalize, center)
        difference = torch.bmm(rows.rows, rows.rows.transpose(1, 2)) - teacher_gram
        difference = mask.zero_left_out_pairs(difference, exclude_diagonal)  # no loss, no gradient
        if mse:
            elementwise = difference * difference  # the bits of .square(), in one operation
        else:
            elementwise = F.smooth_l1_loss(difference, constant(0, difference).expand_as(difference), reduction="none", beta=1.0)
        weights = mask.sample_weights(exclude_diagonal, elementwise) if per_sample else None
        if weights is None:
            loss = elementwise.sum() / mask.pair_count(exclude_diagonal, elementwise)
        else:
            loss = (elementwise * weights).sum()
        ctx.gradients, ctx.scale = _gradients(ctx.needs_input_grad[:2], rows, difference, mask, options), 1.0
        return loss

    @staticmethod
    def backward(ctx, grad):
        # with create_graph (grad enabled) a second derivative through this node is an error, as under once_differentiable
        return _scaled_once(ctx, grad) if torch.is_grad_enabled() else _scaled(ctx, grad)


def _scaled(ctx, grad):
    """The gradients times the incoming one and `ctx.scale`, a product each."""
    if grad is None:
        return None, None, None, None, None
    return *(None if g is None else _times(g, grad, ctx.scale) for g in ctx.gradients), None, None, None


def _times(gradient: Tensor, grad: Tensor, scale: float) -> Tensor:
    return gradient * grad if scale == 1.0 else torch.addcmul(constant(0, gradient), gradient, grad, value=scale)


_scaled_once = once_differentiable(_scaled)


def _gradients(needed: tuple, rows: "_GramRows", difference: Tensor, mask: GramMask, options: tuple) -> tuple:
    """The loss's gradients with respect to the features and the teacher's Gram matrix (None
    where not `needed`)."""
    if not any(needed):
        return None, None
    _, exclude_diagonal, mse, center, per_sample = options
    # d loss / d gram = pair weight · (2·difference (MSE) or the difference clipped to [-1, 1]
    # (smooth L1, beta 1)); both are symmetric, so d gram + d gramᵀ is twice it
    symmetric = mask.weigh_pairs(difference if mse else difference.clamp(-1.0, 1.0), exclude_diagonal, per_sample, 4 if mse else 2)
    d_teacher = symmetric * constant(-0.5, symmetric) if needed[1] else None
    if not needed[0]:
        return None, d_teacher
    if symmetric.dtype != rows.rows.dtype:
        symmetric = symmetric.to(rows.rows.dtype)
    with autocast_off(symmetric.device):  # at the rows' precision, as a backward pass would run it
        # gram = rows rowsᵀ: d rows = (d gram + d gramᵀ) rows
        return _rows_backward(torch.bmm(symmetric, rows.rows), rows, mask, center), d_teacher


def _rows_backward(d_rows: Tensor, rows: "_GramRows", mask: GramMask, center: bool) -> Tensor:
    """The gradient with respect to the features, given that with respect to `rows.rows`
    (zero on absent rows already: their pairs' differences are zero)."""
    if rows.norm is not None:  # rows = c / max(|c|, eps): d c = (d rows - rows <rows, d rows>) / max(|c|, eps)
        # (exact for |c| >= eps, and for c = 0: absent rows, a lone centred row; in between,
        # for 0 < |c| < 1e-12, autograd would drop the radial part)
        unit = rows.rows
        d_rows = torch.addcmul(d_rows, unit, (unit * d_rows).sum(-1, keepdim=True), value=-1).div_(rows.norm)
    return _centred(d_rows, mask) if center else d_rows


def _check_features(features: Tensor, name: str) -> None:
    if features.dim() != 3:
        raise ValueError(f"{name} must be [batch, modalities, dim]; got shape {tuple(features.shape)}")
