from dataclasses import dataclass

import numpy as np
import torch

from gramkd.data.batch_transfer import BatchesStayWhereTheyAre
from gramkd.data.dataset import PairedTensorDataset, SplitLoaders
from gramkd.data.split import SPLITS, stratified_split
from gramkd.errors import GramkdError


@dataclass
class PairedArrays:
    """What a data source yields: one float array per modality (rows aligned), labels, presence."""

    features: dict[str, np.ndarray]  # modality -> [N, ...]
    labels: np.ndarray  # [N] int
    present: dict[str, np.ndarray] | None = None  # modality -> [N] bool; None = all present


class PairedMultimodalDataModule(SplitLoaders, BatchesStayWhereTheyAre):
    """Base for paired multimodal data: seeded stratified split, train-only standardisation, loaders.

    `split_seed` fixes the split (keep it fixed across a sweep so that every job, and the teacher,
    sees the same rows); `seed` drives the shuffling of training batches.
    Subclasses implement `load()` -> PairedArrays and `modalities` / `num_classes`, which must be
    known before `setup()` so that nets can be built to fit the data.
    Batches follow the gramkd contract: {"inputs", "present", "target", "index"}.
    """

    # True for a data module whose training rows differ between epochs (random augmentation):
    # then the teacher's outputs cannot be cached per row.
    random_augmentation = False

    def __init__(
        self,
        split: dict[str, float] | None = None,
        seed: int = 0,
        split_seed: int = 0,
        batch_size: int = 64,
        num_workers: int = 0,
        pin_memory: bool = False,
        standardize: bool = True,
    ):
        super().__init__()
        self.split_fractions = dict(split or {"train": 0.6, "val": 0.2, "test": 0.2})
        self.seed, self.split_seed = seed, split_seed
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.standardize = standardize
        self.split_indices: dict[str, np.ndarray] = {}
        self.standardization: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.datasets: dict[str, PairedTensorDataset] = {}

    # -- what subclasses provide ------------------------------------------------------------
    @property
    def modalities(self) -> dict[str, tuple[int, ...]]:
        """Modality name -> feature shape of one row, in batch order."""
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        raise NotImplementedError

    def load(self) -> PairedArrays:
        raise NotImplementedError

    @property
    def num_rows(self) -> int:
        """Rows in the whole data set (the batch's `index` runs below it); known after setup()."""
        return int(max(idx.max() for idx in self.split_indices.values() if len(idx)) + 1)

    # -- shared machinery ---------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        arrays = self.load()
        present = arrays.present or {m: np.ones(len(arrays.labels), bool) for m in arrays.features}
        self.split_indices = stratified_split(arrays.labels, self.split_fractions, self.split_seed)
        features = {m: torch.as_tensor(x, dtype=torch.float32) for m, x in arrays.features.items()}
        present_t = {m: torch.as_tensor(p, dtype=torch.bool) for m, p in present.items()}
        if self.standardize:
            features = self._standardize(features, present_t, self.split_indices["train"])
        target = torch.as_tensor(arrays.labels, dtype=torch.long)
        for name in SPLITS:
            rows = torch.as_tensor(self.split_indices[name], dtype=torch.long)
            self.datasets[name] = PairedTensorDataset(
                {m: x[rows] for m, x in features.items()},
                {m: p[rows] for m, p in present_t.items()},
                target[rows],
                rows,
            )

    def _standardize(self, features, present, train_rows) -> dict[str, torch.Tensor]:
        out = {}
        for m, x in features.items():
            train = x[train_rows][present[m][train_rows]]
            if len(train) == 0:
                raise GramkdError(f"modality '{m}' is absent from every training row: nothing to learn it from")
            mean, std = train.mean(0), train.std(0, unbiased=False)
            std = torch.where(std > 1e-8, std, torch.ones_like(std))
            self.standardization[m] = (mean, std)
            out[m] = torch.where(_expand(present[m], x), (x - mean) / std, torch.zeros_like(x))
        return out


def _expand(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.view(-1, *([1] * (like.dim() - 1)))


def select_modalities(available: dict, requested: list[str] | None, source: str) -> list[str]:
    """The requested modalities in the requested order, or a one-line error naming the unknown one."""
    if requested is None:
        return list(available)
    for m in requested:
        if m not in available:
            raise GramkdError(f"modality '{m}' is not in {source}; it has: {', '.join(available)}")
    if len(set(requested)) != len(requested) or not requested:
        raise GramkdError(f"modalities must be a non-empty list without repeats, got {list(requested)}")
    return list(requested)
