"""The presence mask of a batch, prepared once for every Gram matrix and Gram loss of the batch."""

import torch
from torch import Tensor

GRAM_REDUCTIONS = ("sample", "pair")


class GramMask:
    """A ``[B, M]`` bool presence mask, prepared for :func:`gram_matrix` and the losses.

    Pass one wherever these functions take a ``mask``, to prepare the mask once per batch rather
    than once per call: it holds what the mask implies (the pairs to average over, how many rows
    each sample has, each pair's weight in the loss) as tensors of the features' dtype (a Python
    number costs a tensor conversion per use). ``GramMask(None, batch, modalities)`` stands for
    every modality present.
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
            check_size(mask, features)
            return mask
        if mask is None:
            return cls(None, features.shape[0], features.shape[1])
        check_mask(mask, features)
        return cls(mask)

    def repeated(self, times: int) -> "GramMask":
        """The mask of ``times`` consecutive rows per sample (``[B, L, M, D]`` flattened to ``[B·L, M, D]``)."""

        def make() -> GramMask:
            if self.all_present:
                return GramMask(None, self.batch * times, self.modalities)
            return GramMask(self.present.repeat_interleave(times, 0))

        return self._memo(("repeated", times), make)

    # What follows serves the masking path: a mask with every modality present takes
    # `gram_all_present` instead, which needs none of it.

    def keep_rows(self, features: Tensor) -> Tensor:
        """`features` with the rows of absent modalities zeroed (whatever they held: inf, NaN)."""
        return torch.where(self.present.unsqueeze(-1), features, constant(0, features))

    def rows_present(self, like: Tensor) -> Tensor:
        """Present modalities per sample, at least 1, in `like`'s dtype: ``[B, 1, 1]``."""
        return self._memo(("rows", like.dtype), lambda: self._present_count(like).clamp(min=1).view(-1, 1, 1))

    def zero_left_out_pairs(self, gram: Tensor, exclude_diagonal: bool) -> Tensor:
        """`gram` ``[B, M, M]`` with the pairs a loss leaves out zeroed."""
        return torch.where(self._memo(("pairs", exclude_diagonal), lambda: self._kept_pairs(exclude_diagonal)), gram, constant(0, gram))

    def pair_count(self, exclude_diagonal: bool, like: Tensor) -> Tensor:
        """How many pairs a loss averages over, at least 1, as a scalar tensor of `like`'s dtype."""
        return self._memo(
            ("count", exclude_diagonal, like.dtype), lambda: self._pairs_per_sample(exclude_diagonal).sum().clamp(min=1).to(like.dtype)
        )

    def sample_weights(self, exclude_diagonal: bool, like: Tensor) -> Tensor:
        """``[B, 1, 1]``: each kept pair's weight in the per-sample mean (1 / (the sample's pairs ·
        the samples that have a pair))."""

        def weights() -> Tensor:
            k = self._present_count(like)
            pairs = k * (k - 1) if exclude_diagonal else k * k
            return (pairs.clamp(min=1) * torch.count_nonzero(pairs).clamp(min=1)).reciprocal().view(-1, 1, 1)

        return self._memo(("weights", exclude_diagonal, like.dtype), weights)

    def weigh_pairs(self, gram: Tensor, exclude_diagonal: bool, per_sample: bool, factor: int) -> Tensor:
        """`gram` ``[B, M, M]`` times `factor` and each pair's weight in the loss."""

        def scale() -> Tensor:
            weights = self.sample_weights(exclude_diagonal, gram) if per_sample else 1 / self.pair_count(exclude_diagonal, gram)
            return factor * weights

        return gram * self._memo(("scale", exclude_diagonal, per_sample, factor, gram.dtype), scale)

    def _present_count(self, like: Tensor) -> Tensor:
        """``[B]``: present modalities per sample, in `like`'s dtype."""
        return self._memo(("present", like.dtype), lambda: self.present.sum(1, dtype=like.dtype))

    def _pairs_per_sample(self, exclude_diagonal: bool) -> Tensor:
        """``[B]`` int: kept pairs per sample, k² (or k² - k without the diagonal) for k present."""
        k = self.present.sum(1)
        return k * k - k if exclude_diagonal else k * k

    def _kept_pairs(self, exclude_diagonal: bool) -> Tensor:
        """``[B, M, M]`` bool, True for the pairs a loss averages over."""
        pairs = self.present.unsqueeze(2) & self.present.unsqueeze(1)
        return pairs & off_diagonal(self.modalities, self.present.device) if exclude_diagonal else pairs

    def _memo(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]


_CONSTANTS: dict[tuple, Tensor] = {}


def cached(key: tuple, make):
    """A tensor (or a value holding tensors) made once, never written to, and never an inference
    tensor: one made during validation may be saved for backward in training."""
    if key not in _CONSTANTS:
        if len(_CONSTANTS) > 4096:  # batch sizes, dtypes and devices are few; stay bounded regardless
            _CONSTANTS.clear()
        with torch.inference_mode(False):
            _CONSTANTS[key] = make()
    return _CONSTANTS[key]


def constant(value: float, like: Tensor) -> Tensor:
    """A scalar tensor of `like`'s dtype and device, made once."""
    return cached((value, like.dtype, like.device), lambda: torch.full((), value, dtype=like.dtype, device=like.device))


def off_diagonal(modalities: int, device) -> Tensor:
    """``[M, M]`` bool, False on the diagonal, made once per size and device."""
    return cached(("off_diagonal", modalities, device), lambda: ~torch.eye(modalities, dtype=torch.bool, device=device))


def check_size(mask: GramMask, features: Tensor) -> None:
    if (mask.batch, mask.modalities) != tuple(features.shape[:2]):
        raise ValueError(
            f"mask must have shape [batch, modalities] = {tuple(features.shape[:2])} to match features "
            f"{tuple(features.shape)}; got {(mask.batch, mask.modalities)}"
        )


def check_mask(mask: Tensor, features: Tensor) -> None:
    if mask.shape != features.shape[:2]:
        raise ValueError(
            f"mask must have shape [batch, modalities] = {tuple(features.shape[:2])} to match features "
            f"{tuple(features.shape)}; got {tuple(mask.shape)}"
        )
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor; got dtype {mask.dtype}")
