import torch
from torch.utils.data import DataLoader, Dataset

from gramkd.data.sampler import EpochSeededSampler, every_row_once_across_ranks


class PairedTensorDataset(Dataset):
    """Rows of paired modalities held as tensors; a list of indices is served as one batch.

    DataLoader calls `__getitems__` with a whole batch of indices, so a batch is a few tensor
    gathers instead of B dict constructions and a collate: the loader must use `as_batch` as
    its collate_fn.
    """

    def __init__(self, features: dict[str, torch.Tensor], present: dict[str, torch.Tensor], target: torch.Tensor, index: torch.Tensor):
        self.features, self.present, self.target, self.index = features, present, target, index

    def __len__(self) -> int:
        return len(self.target)

    def __getitem__(self, i: int) -> dict:
        return {
            "inputs": {m: x[i] for m, x in self.features.items()},
            "present": {m: p[i] for m, p in self.present.items()},
            "target": self.target[i],
            "index": self.index[i],
        }

    def __getitems__(self, rows: list[int]) -> dict:
        rows = torch.as_tensor(rows, dtype=torch.long)
        return {
            "inputs": {m: x[rows] for m, x in self.features.items()},
            "present": {m: p[rows] for m, p in self.present.items()},
            "target": self.target[rows],
            "index": self.index[rows],
        }


def as_batch(batch: dict) -> dict:
    """collate_fn for PairedTensorDataset: `__getitems__` already built the batch."""
    return batch


def one_row(dataset: Dataset, i: int) -> dict:
    """Row `i` of a dataset that serves whole batches (`__getitems__`), as a single sample."""
    batch = dataset.__getitems__([i])
    return {
        "inputs": {m: x[0] for m, x in batch["inputs"].items()},
        "present": {m: p[0] for m, p in batch["present"].items()},
        "target": batch["target"][0],
        "index": batch["index"][0],
    }


def batch_loader(
    dataset: Dataset,
    batch_size: int,
    seed: int,
    shuffle: bool,
    num_workers: int = 0,
    pin_memory: bool = False,
    every_row_once: bool = False,
) -> DataLoader:
    """A DataLoader over a batch-serving dataset: seeded per-epoch shuffling for training;
    `every_row_once`: under DDP, each row on one rank only (the test split)."""
    sampler = every_row_once_across_ranks(len(dataset)) if every_row_once else None
    if sampler is None and shuffle:
        sampler = EpochSeededSampler(len(dataset), seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        collate_fn=as_batch,
    )


class DiskPairedDataset(Dataset):
    """Rows of paired modalities read from disk per batch and standardised on the fly.

    `arrays` are DiskArray / InMemoryArray (gramkd.data.disk_array); `rows` are the source rows of
    this split. A batch reads just its rows, in their source dtype, converts them to float32,
    standardises them with the training statistics and zeroes absent rows, so nothing but
    labels and masks (one value per row) stays in memory. Same batches as PairedTensorDataset;
    the loader must use `as_batch` as its collate_fn.
    """

    def __init__(self, arrays: dict, present: dict, labels, rows, standardization: dict | None = None):
        self.arrays, self.present, self.labels, self.rows = arrays, present, labels, rows
        self.standardization = standardization or {}  # modality -> (mean, std) float32 numpy arrays

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return one_row(self, i)

    def __getitems__(self, positions: list[int]) -> dict:
        rows = self.rows[positions]
        inputs, present = {}, {}
        for m, array in self.arrays.items():
            x = array.take(rows).astype("float32", copy=False)
            if m in self.standardization:
                mean, std = self.standardization[m]
                x = (x - mean) / std
            there = self.present[m][rows]
            x[~there] = 0
            inputs[m], present[m] = torch.from_numpy(x), torch.from_numpy(there)
        return {"inputs": inputs, "present": present, "target": torch.from_numpy(self.labels[rows]), "index": torch.from_numpy(rows)}


class SplitLoaders:
    """The loaders of a data module whose `datasets[split]` serve whole batches (and which has
    `batch_size`, `seed`, `num_workers`, `pin_memory`): training shuffled per epoch, and under DDP
    the test split with every row on one rank."""

    def _loader(self, split: str) -> DataLoader:
        options = {"num_workers": self.num_workers, "pin_memory": self.pin_memory, "every_row_once": split == "test"}
        return batch_loader(self.datasets[split], self.batch_size, self.seed, shuffle=split == "train", **options)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
