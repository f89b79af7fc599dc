"""Checks of a features folder before any training, each failure one line naming file, row or key.

`check_*` read only labels, split and masks (one value per row). `scan_modality` reads a
modality's array in chunks of a few MB: it refuses NaN and Inf where no missing-modality marker
allows them, finds the all-NaN (absent) rows, and accumulates the standardisation statistics of
the training rows on the way, so a large array is read once and never held whole.
"""

import warnings
from dataclasses import dataclass

import numpy as np

from gramkd.data.disk_array import row_chunks
from gramkd.data.feature_files import FeatureFolder, ModalityArray, read_small_array
from gramkd.data.split import SPLITS
from gramkd.errors import GramkdError

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


def order_modalities(folder: FeatureFolder, requested: list[str] | None) -> list[str]:
    """The configured order (which must name exactly the folder's modalities) or sorted by name."""
    found = list(folder.modalities)
    if requested is None:
        return found
    requested = [str(m) for m in requested]
    if len(set(requested)) != len(requested) or not requested:
        raise GramkdError(f"data.modalities must be a non-empty list without repeats, got {requested}")
    for name in requested:
        if name not in folder.modalities:
            raise GramkdError(
                f"modality '{name}' is in data.modalities but not in {folder.path} (it has: {', '.join(found)}); "
                f"add {name}.npy there or remove '{name}' from data.modalities"
            )
    for name in found:
        if name not in requested:
            raise GramkdError(
                f"{folder.modalities[name].where} holds modality '{name}', which data.modalities does not list; "
                f"add '{name}' to data.modalities or move the file out of {folder.path}"
            )
    return requested


def check_labels(folder: FeatureFolder, num_classes: int | None) -> tuple[np.ndarray, int]:
    """(labels as int64, number of classes): integers from 0; num_classes is max + 1 unless configured."""
    file = folder.path / "labels.npy"
    labels = read_small_array(file, "labels")
    if labels.dtype.kind not in "iu":
        raise GramkdError(f"{file} holds {labels.dtype} values; labels must be integers: save labels.astype(numpy.int64)")
    if len(labels) == 0:
        raise GramkdError(f"{file} is empty: save one label per row")
    labels = labels.astype(np.int64)
    negative = np.flatnonzero(labels < 0)
    if len(negative):
        row = negative[0]
        raise GramkdError(f"{file} row {row} is {labels[row]}; labels must be integers from 0 (classes 0..C-1)")
    if num_classes is None:
        num_classes = int(labels.max()) + 1
    too_big = np.flatnonzero(labels >= num_classes)
    if len(too_big):
        row = too_big[0]
        raise GramkdError(
            f"{file} row {row} is {labels[row]}, but data.num_classes={num_classes}: labels must be in 0..{num_classes - 1}; "
            f"fix the label or raise data.num_classes"
        )
    empty = np.flatnonzero(np.bincount(labels, minlength=num_classes) == 0)
    if len(empty):
        warnings.warn(f"{file}: class(es) {', '.join(map(str, empty[:10]))} have no rows (num_classes={num_classes})", stacklevel=2)
    return labels, num_classes


def check_rows(folder: FeatureFolder, num_labels: int) -> None:
    """Every modality has one row per label."""
    for found in folder.modalities.values():
        if len(found.array) != num_labels:
            raise GramkdError(
                f"row counts differ: {folder.path / 'labels.npy'} has {num_labels} rows but modality '{found.name}' "
                f"({found.where}) has {len(found.array)}; every modality needs one row per label, in the same order"
            )


def check_present_masks(folder: FeatureFolder, num_rows: int) -> dict[str, np.ndarray]:
    """modality -> bool [N] from its <modality>.present.npy (True = present)."""
    masks = {}
    for name, file in folder.present_files.items():
        mask = read_small_array(file, f"the present mask of modality '{name}'")
        if mask.dtype.kind in "iu" and np.isin(mask, (0, 1)).all():
            mask = mask.astype(bool)
        if mask.dtype != bool:
            raise GramkdError(f"{file} holds {mask.dtype} values; a present mask must be bool (True = the modality is there) or 0/1")
        if len(mask) != num_rows:
            raise GramkdError(f"row counts differ: {file} has {len(mask)} rows but labels.npy has {num_rows}; save one flag per row")
        masks[name] = mask
    return masks


def check_split(folder: FeatureFolder, num_rows: int) -> dict[str, np.ndarray] | None:
    """Row indices of train/val/test from split.npy ('train'/'val'/'test' or 0/1/2 per row), or None."""
    file = folder.split_file
    if file is None:
        return None
    split = read_small_array(file, "the split")
    if len(split) != num_rows:
        raise GramkdError(f"row counts differ: {file} has {len(split)} rows but labels.npy has {num_rows}; save one split per row")
    if split.dtype.kind in "US":
        names = split.astype(str)
        codes = np.full(len(split), -1)
        for name, code in SPLIT_CODES.items():
            codes[names == name] = code
    elif split.dtype.kind in "iu":
        codes = np.where(np.isin(split, (0, 1, 2)), split, -1)
    else:
        raise GramkdError(f"{file} holds {split.dtype} values; save 'train'/'val'/'test' or 0/1/2 per row")
    bad = np.flatnonzero(codes < 0)
    if len(bad):
        row = bad[0]
        raise GramkdError(f"{file} row {row} is {split[row].item()!r}; each row must be 'train', 'val' or 'test' (or 0, 1, 2)")
    rows = {name: np.flatnonzero(codes == code) for name, code in SPLIT_CODES.items()}
    for name in SPLITS:
        if len(rows[name]) == 0:
            raise GramkdError(f"{file} has no '{name}' rows; train, val and test each need at least one")
    return rows


@dataclass
class ScanResult:
    present: np.ndarray  # bool [N]
    mean: np.ndarray | None  # float32 row shape, over present training rows; None without standardisation
    std: np.ndarray | None


def scan_modality(found: ModalityArray, mask: np.ndarray | None, train: np.ndarray | None) -> ScanResult:
    """Read a modality once, in chunks: refuse bad values, find absent rows, fit the statistics.

    Without a mask file, an all-NaN row is absent and any other NaN or an Inf is an error; with
    one, rows it marks absent may hold anything and rows it marks present must be finite.
    `train` (bool [N]) selects the rows that the statistics come from; None skips them.
    """
    array = found.array
    num_rows = len(array)
    present = np.ones(num_rows, bool) if mask is None else mask.copy()
    stats = _RunningMoments() if train is not None else None
    for start, stop in row_chunks(num_rows, array.nbytes // num_rows):
        x = array.slice(start, stop)
        if found.is_float:
            flat = x.reshape(len(x), -1)
            if not np.isfinite(flat).all():
                _check_values(found, flat, start, None if mask is None else mask[start:stop], present)
        if stats is not None:
            keep = train[start:stop] & present[start:stop]
            if keep.any():
                stats.add(x[keep])
    if stats is None:
        return ScanResult(present, None, None)
    if stats.count == 0:
        raise GramkdError(f"modality '{found.name}' is absent from every training row: nothing to learn it from")
    std = np.sqrt(stats.m2 / stats.count)
    std = np.where(std > 1e-8, std, 1.0)
    return ScanResult(present, stats.mean.astype(np.float32), std.astype(np.float32))


def _check_values(found: ModalityArray, flat: np.ndarray, start: int, mask: np.ndarray | None, present: np.ndarray) -> None:
    nan = np.isnan(flat)
    any_nan, all_nan, inf = nan.any(1), nan.all(1), np.isinf(flat).any(1)
    if mask is not None:
        bad = np.flatnonzero((any_nan | inf) & mask)
        if len(bad):
            row = start + bad[0]
            what = "Inf" if inf[bad[0]] else "NaN"
            raise GramkdError(
                f"modality '{found.name}' ({found.where}) row {row} holds {what}, but {found.name}.present.npy marks it present; "
                f"replace the values, or set row {row} of the mask to False"
            )
        return
    bad = np.flatnonzero((any_nan & ~all_nan) | inf)
    if len(bad):
        row = start + bad[0]
        if inf[bad[0]]:
            raise GramkdError(
                f"modality '{found.name}' ({found.where}) row {row} holds Inf; replace it with finite values, "
                f"or mark the row absent (all NaN, or False in {found.name}.present.npy)"
            )
        raise GramkdError(
            f"modality '{found.name}' ({found.where}) row {row} is partly NaN; a row is either complete or all NaN "
            f"(the modality is absent): fill in the values or set the whole row to NaN"
        )
    present[start : start + len(flat)] &= ~all_nan


class _RunningMoments:
    """Mean and sum of squared deviations over rows added in chunks (Chan et al.'s merge), in float64."""

    def __init__(self):
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, rows: np.ndarray) -> None:
        rows = rows.astype(np.float64)
        n = len(rows)
        mean = rows.mean(0)
        m2 = ((rows - mean) ** 2).sum(0)
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * n / total)
        self.count = total
