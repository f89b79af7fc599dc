"""Modality-level Gram matrices and the loss that matches a student's to its teacher's.

At the sizes distillation runs them ([B, M, M] with M a handful of modalities) these functions are
bound by the number of tensor operations, not by arithmetic: what depends on the presence mask
alone is prepared once per batch (`GramMask`) and shared by both Gram matrices and the loss, and
nothing is masked when every modality is present.
"""

from functools import cached_property

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

GRAM_DISTANCES = ("mse", "smooth_l1")
NORM_EPS = 1e-12  # as F.normalize


class GramMask:
    """A ``[B, M]`` bool presence mask, prepared for :func:`gram_matrix` and the losses.

    Pass one wherever these functions take a ``mask``, to prepare the mask once per batch rather
    than once per call: it holds what the mask implies (the pairs to average over, how many rows
    each sample has) and the constants the functions divide by, as tensors of the features' dtype
    (a Python number costs a tensor conversion per use). ``GramMask(None, batch, modalities)``
    stands for every modality present.
    """

    def __init__(self, present: Tensor | None, batch: int | None = None, modalities: int | None = None):
        if present is not None:
            batch, modalities = present.shape
        self.present, self.batch, self.modalities = present, batch, modalities
        self.all_present = present is None or bool(present.all())
        self._cache: dict = {}

    @classmethod
    def of(cls, mask: "Tensor | GramMask | None", features: Tensor) -> "GramMask":
        """`mask` prepared for `features` ``[B, M, D]`` (checked against them)."""
        if isinstance(mask, GramMask):
            _check_size(mask, features)
            return mask
        if mask is None:
            return cls(None, features.shape[0], features.shape[1])
        _check_mask(mask, features)
        return cls(mask)

    @cached_property
    def kept_rows(self) -> Tensor | None:
        """``[B, M, 1]`` bool, True where a modality is present; None when all are present."""
        return None if self.all_present else self.present.unsqueeze(-1)

    def keep_rows(self, features: Tensor) -> Tensor:
        """`features` with the rows of absent modalities zeroed (whatever they held: inf, NaN)."""
        kept = self.kept_rows
        return features if kept is None else torch.where(kept, features, self.zero(features))

    def zero(self, like: Tensor) -> Tensor:
        return _constant(0, like)

    def rows_present(self, like: Tensor) -> Tensor:
        """Present modalities per sample, at least 1, in `like`'s dtype: ``[B, 1, 1]`` (a scalar
        tensor when all are present)."""

        def count() -> Tensor:
            if self.all_present:
                return _constant(self.modalities, like)
            return self.present.sum(1).clamp(min=1).view(-1, 1, 1).to(like.dtype)

        return self._memo(("rows", like.dtype), count)

    def kept_pairs(self, exclude_diagonal: bool) -> Tensor | None:
        """``[B, M, M]`` (or ``[M, M]``) bool, True for the pairs a loss averages over; None for all."""
        return self._memo(("pairs", exclude_diagonal), lambda: self._make_pairs(exclude_diagonal))

    def pair_count(self, exclude_diagonal: bool, like: Tensor) -> Tensor:
        """How many pairs a loss averages over, at least 1, as a scalar tensor of `like`'s dtype."""

        def count() -> Tensor:
            pairs = self.kept_pairs(exclude_diagonal)
            if pairs is None or pairs.dim() == 2:  # all present: every pair, or all off the diagonal
                m = self.modalities
                return _constant(max(self.batch * m * (m - int(exclude_diagonal)), 1), like)
            return pairs.sum().clamp(min=1).to(like.dtype)

        return self._memo(("count", exclude_diagonal, like.dtype), count)

    def _make_pairs(self, exclude_diagonal: bool) -> Tensor | None:
        m = self.modalities
        device = None if self.present is None else self.present.device
        off_diagonal = ~torch.eye(m, dtype=torch.bool, device=device) if exclude_diagonal else None
        if self.all_present:
            return off_diagonal
        pairs = self.present.unsqueeze(2) & self.present.unsqueeze(1)
        return pairs if off_diagonal is None else pairs & off_diagonal

    def _memo(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]


_CONSTANTS: dict[tuple, Tensor] = {}


def _constant(value: int, like: Tensor) -> Tensor:
    """A scalar tensor of `like`'s dtype and device, made once (never written to), and never an
    inference tensor: one made during validation may be saved for backward in training."""
    key = (value, like.dtype, like.device)
    if key not in _CONSTANTS:
        if len(_CONSTANTS) > 4096:  # batch sizes, dtypes and devices are few; stay bounded regardless
            _CONSTANTS.clear()
        with torch.inference_mode(False):
            _CONSTANTS[key] = torch.full((), value, dtype=like.dtype, device=like.device)
    return _CONSTANTS[key]


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
    what the backward pass of :class:`_GramLossToTarget` needs (the norms)."""

    def __init__(self, rows: Tensor, norm: Tensor | None = None):
        self.rows, self.norm = rows, norm

    @classmethod
    def of(cls, features: Tensor, mask: GramMask, normalize: bool, center: bool) -> "_GramRows":
        features = mask.keep_rows(features)
        if center:
            features = mask.keep_rows(features - features.sum(1, keepdim=True) / mask.rows_present(features))
        if not normalize:
            return cls(features)
        norm = torch.linalg.vector_norm(features, dim=-1, keepdim=True).clamp_min(NORM_EPS)
        return cls(features / norm, norm)


def gram_loss(
    student_features: Tensor,
    teacher_features: Tensor,
    mask: "Tensor | GramMask | None" = None,
    normalize: bool = True,
    exclude_diagonal: bool = False,
    distance: str = "mse",
    center: bool = False,
) -> Tensor:
    """Mean distance between student and teacher Gram matrices over the present modality pairs.

    Args:
        student_features: ``[B, M, Ds]``.
        teacher_features: ``[B, M, Dt]``; Dt may differ from Ds.
        mask: ``[B, M]`` bool, shared by both (or a :class:`GramMask` of one); pair ``(b, i, j)``
            counts iff ``mask[b, i] and mask[b, j]``. None means all present.
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
    mask = GramMask.of(mask, student_features)
    teacher_gram = gram_matrix(teacher_features, mask, normalize, center)
    return gram_loss_to_target(student_features, teacher_gram, mask, normalize, exclude_diagonal, distance, center)


def gram_loss_to_target(
    student_features: Tensor,
    teacher_gram: Tensor,
    mask: "Tensor | GramMask | None" = None,
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
    _check_features(student_features, "student_features")
    mask = GramMask.of(mask, student_features)
    return _GramLossToTarget.apply(student_features, teacher_gram, mask, normalize, exclude_diagonal, distance, center)


class _GramLossToTarget(torch.autograd.Function):
    """:func:`gram_loss_to_target` as one autograd node. Its forward runs the very operations of
    :func:`gram_matrix` and the loss (the same bits); its backward is the gradient written out,
    a dozen operations where autograd would replay the forward's forty."""

    @staticmethod
    def forward(ctx, features, teacher_gram, mask: GramMask, normalize, exclude_diagonal, distance, center):
        rows = _GramRows.of(features, mask, normalize, center)
        student_gram = torch.bmm(rows.rows, rows.rows.transpose(1, 2))
        difference = student_gram - teacher_gram
        if distance == "mse":
            elementwise = difference.square()
        else:
            elementwise = F.smooth_l1_loss(student_gram, teacher_gram, reduction="none", beta=1.0)
        kept = mask.kept_pairs(exclude_diagonal)
        if kept is not None:
            elementwise = torch.where(kept, elementwise, mask.zero(elementwise))
        count = mask.pair_count(exclude_diagonal, elementwise)
        ctx.save_for_backward(rows.rows, difference, count, *((rows.norm,) if normalize else ()))
        ctx.mask, ctx.options = mask, (exclude_diagonal, distance, center)
        return elementwise.sum() / count

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        rows, difference, count, *norms = ctx.saved_tensors
        mask, (exclude_diagonal, distance, center) = ctx.mask, ctx.options
        # d loss / d gram: 2·difference (MSE; the 2 is added below) or the difference clipped to
        # [-1, 1] (smooth L1, beta 1), over the kept pairs, divided by their count
        scale = grad / count
        if distance == "mse":
            scale = scale + scale
        d_gram = (difference if distance == "mse" else difference.clamp(-1.0, 1.0)) * scale
        kept = mask.kept_pairs(exclude_diagonal)
        if kept is not None:
            d_gram = torch.where(kept, d_gram, mask.zero(d_gram))
        d_features = None
        if ctx.needs_input_grad[0]:  # gram = rows rowsᵀ: d rows = (d_gram + d_gramᵀ) rows
            symmetric = d_gram + d_gram.transpose(1, 2)
            if symmetric.dtype != rows.dtype:
                symmetric = symmetric.to(rows.dtype)
            d_features = _rows_backward(torch.bmm(symmetric, rows), rows, norms, mask, center)
        return d_features, -d_gram if ctx.needs_input_grad[1] else None, None, None, None, None, None


def _rows_backward(d_rows: Tensor, rows: Tensor, norms: list[Tensor], mask: GramMask, center: bool) -> Tensor:
    """The gradient with respect to the features, given that with respect to `_GramRows.rows`."""
    if norms:  # rows = c / max(|c|, eps): d c = (d rows - rows <rows, d rows>) / max(|c|, eps)
        # (exact for |c| >= eps, and for c = 0: absent rows, a lone centred row; in between,
        # for 0 < |c| < 1e-12, autograd would drop the radial part)
        (norm,) = norms
        d_rows = (d_rows - rows * (rows * d_rows).sum(-1, keepdim=True)) / norm
    d_rows = mask.keep_rows(d_rows)
    if center:
        d_rows = mask.keep_rows(d_rows - d_rows.sum(1, keepdim=True) / mask.rows_present(d_rows))
    return d_rows


def _check_features(features: Tensor, name: str) -> None:
    if features.dim() != 3:
        raise ValueError(f"{name} must be [batch, modalities, dim]; got shape {tuple(features.shape)}")


def _check_size(mask: GramMask, features: Tensor) -> None:
    if (mask.batch, mask.modalities) != tuple(features.shape[:2]):
        raise ValueError(
            f"mask must have shape [batch, modalities] = {tuple(features.shape[:2])} to match features "
            f"{tuple(features.shape)}; got {(mask.batch, mask.modalities)}"
        )


def _check_mask(mask: Tensor, features: Tensor) -> None:
    if mask.shape != features.shape[:2]:
        raise ValueError(
            f"mask must have shape [batch, modalities] = {tuple(features.shape[:2])} to match features "
            f"{tuple(features.shape)}; got {tuple(mask.shape)}"
        )
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor; got dtype {mask.dtype}")
