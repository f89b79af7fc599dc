import warnings

import numpy as np
import torch

from gramkd.config import files_fingerprint
from gramkd.data.dataset import DiskPairedDataset
from gramkd.data.feature_checks import (
    check_labels,
    check_present_masks,
    check_rows,
    check_split,
    order_modalities,
    scan_modality,
)
from gramkd.data.feature_files import find_arrays
from gramkd.data.paired import PairedMultimodalDataModule
from gramkd.data.split import SPLITS, stratified_split


class FeaturesDataModule(PairedMultimodalDataModule):
    """Paired features from files: one array per modality in `path`, plus labels.npy.

    Layouts (see gramkd.data.feature_files): `<modality>.npy`, `<modality>.npz` or
    `<modality>.safetensors` holding one array each, or one `.npz` / `.safetensors` file with one
    array per modality. Rows are `[N, D]` vectors or `[N, T, D]` sequences; `labels.npy` holds one
    integer class (from 0) per row. Optional: `split.npy` ('train'/'val'/'test' or 0/1/2 per row,
    which replaces the seeded stratified split) and `<modality>.present.npy` (bool per row; without
    it an all-NaN row means the modality is absent from that sample).

    Modalities are ordered as in `modalities` (which must name exactly the folder's) or by name.
    `num_classes` defaults to the largest label + 1. Files are read by rows, never whole: headers
    when constructed (so `modalities` and `num_classes` are known), one chunked pass per modality
    in `setup()` (checks and statistics), and each batch's rows while training.
    `fingerprint` is filled in by the config (size and mtime of the files) so that cached runs
    on changed files are not reused; a checkpoint's value that differs from the files' warns.
    """

    def __init__(
        self,
        path: str | None = None,
        modalities: list[str] | None = None,
        num_classes: int | None = None,
        fingerprint: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.folder = find_arrays(path)
        self.order = order_modalities(self.folder, modalities)
        self.labels, self._num_classes = check_labels(self.folder, num_classes)
        check_rows(self.folder, len(self.labels))
        self.present_masks = check_present_masks(self.folder, len(self.labels))
        self.given_split = check_split(self.folder, len(self.labels))
        self.present: dict[str, np.ndarray] = {}
        if fingerprint is not None and fingerprint != files_fingerprint(self.folder.path):
            warnings.warn(f"the files in {self.folder.path} changed since this configuration was saved", stacklevel=2)

    @property
    def modalities(self) -> dict[str, tuple[int, ...]]:
        return {m: tuple(self.folder.modalities[m].array.shape[1:]) for m in self.order}

    @property
    def num_classes(self) -> int:
        return self._num_classes

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        if self.given_split is not None:
            self.split_indices = self.given_split
        else:
            self.split_indices = stratified_split(self.labels, self.split_fractions, self.split_seed)
        train = np.zeros(len(self.labels), bool)
        train[self.split_indices["train"]] = True
        stats = {}
        for m in self.order:
            result = scan_modality(self.folder.modalities[m], self.present_masks.get(m), train if self.standardize else None)
            self.present[m] = result.present
            if self.standardize:
                stats[m] = (result.mean, result.std)
                self.standardization[m] = (torch.from_numpy(result.mean), torch.from_numpy(result.std))
        arrays = {m: self.folder.modalities[m].array for m in self.order}
        for name in SPLITS:
            self.datasets[name] = DiskPairedDataset(arrays, self.present, self.labels, self.split_indices[name], stats)
