"""The Gram loss and its gradients when every sample has every modality, the common case.

Nothing is masked then and every sample has the same pairs, so the per-sample mean is the pair
mean. The loss runs the very operations of the general path (the same bits, tested); the
gradients are written with fewer: the pair weight is left to the backward's one product (it is a
number), and the centring's 1/M is folded into its subtraction. Inside a training step, where
everything around it has left the caches cold, each operation and Python call saved counts.
"""

from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from gramkd.distill.functional.gram_mask import cached, constant, off_diagonal

NORM_EPS = 1e-12  # as F.normalize


@dataclass(frozen=True)
class _Pairs:
    """What the loss needs of the pairs, in the Gram matrices' dtype (under autocast not the rows')."""

    count: Tensor  # the pairs the loss averages over
    off_diagonal: Tensor | None  # [M, M] ones, zeros on the diagonal (None: the diagonal counts)
    zero: Tensor
    weight: float  # d loss / d gram per pair, over d (MSE) or the clipped d (smooth L1), both halves


def _pairs(gram: Tensor, exclude_diagonal: bool, mse: bool) -> _Pairs:
    batch, m, _ = gram.shape
    dtype, device = gram.dtype, gram.device

    def make() -> _Pairs:
        count = max(batch * m * (m - int(exclude_diagonal)), 1)
        ones = off_diagonal(m, device).to(dtype) if exclude_diagonal else None
        return _Pairs(torch.full((), count, dtype=dtype, device=device), ones, constant(0, gram), (4 if mse else 2) / count)

    return cached(("all_present_pairs", batch, m, dtype, device, exclude_diagonal, mse), make)


def rows_of(features: Tensor, normalize: bool, center: bool, in_place: bool = True) -> tuple[Tensor, Tensor | None]:
    """The rows of the Gram matrix (centred, normalised as asked) and their norms; `in_place`:
    normalised in place where they are not `features` (where nothing records the operations)."""
    rows = features - features.sum(1, keepdim=True) / constant(features.shape[1], features) if center else features
    if not normalize:
        return rows, None
    norm = torch.linalg.vector_norm(rows, dim=-1, keepdim=True)
    norm = norm.clamp_min_(NORM_EPS) if in_place else norm.clamp_min(NORM_EPS)
    return (rows.div_(norm) if in_place and rows is not features else rows / norm), norm


def loss_and_gradients(needed: tuple, features: Tensor, teacher_gram, teacher_features, options: tuple) -> tuple:
    """The loss, the gradients with respect to the features and the teacher's Gram matrix (None
    where not `needed`), and the number the backward scales them by with the incoming gradient.
    Run where nothing records the operations (an autograd Function's forward)."""
    normalize, exclude_diagonal, mse, center, _ = options
    if teacher_gram is None:
        teacher = rows_of(teacher_features, normalize, center)[0]
        teacher_gram = torch.bmm(teacher, teacher.transpose(1, 2))
    rows, norm = rows_of(features, normalize, center)
    difference = torch.bmm(rows, rows.transpose(1, 2)) - teacher_gram
    pairs = _pairs(difference, exclude_diagonal, mse)
    if pairs.off_diagonal is not None:  # a product with ones and zeros: the bits of a `where`, at a third of its cost
        difference = difference * pairs.off_diagonal
    if mse:
        elementwise = difference * difference
    else:
        elementwise = F.smooth_l1_loss(difference, pairs.zero.expand_as(difference), reduction="none", beta=1.0)
    loss = elementwise.sum() / pairs.count
    if not any(needed):
        return loss, (None, None), pairs.weight
    d_gram = difference if mse else difference.clamp(-1.0, 1.0)  # d gram + d gramᵀ, before the pair weight
    d_teacher = d_gram * -0.5 if needed[1] else None
    if not needed[0]:
        return loss, (None, d_teacher), pairs.weight
    if d_gram.dtype != rows.dtype:
        d_gram = d_gram.to(rows.dtype)
    with autocast_off(d_gram.device):  # at the rows' precision, as a backward pass would run it
        return loss, (_features_gradient(torch.bmm(d_gram, rows), rows, norm, center), d_teacher), pairs.weight


def _features_gradient(d_rows: Tensor, rows: Tensor, norm: Tensor | None, center: bool) -> Tensor:
    if norm is not None:  # rows = x / max(|x|, eps): d x = (d rows - rows <rows, d rows>) / max(|x|, eps)
        d_rows = torch.addcmul(d_rows, rows, (rows * d_rows).sum(-1, keepdim=True), value=-1).div_(norm)
    return torch.sub(d_rows, d_rows.sum(1, keepdim=True), alpha=1 / rows.shape[1]) if center else d_rows


def autocast_off(device: torch.device):
    return torch.autocast(device.type, enabled=False) if torch.is_autocast_enabled(device.type) else nullcontext()
