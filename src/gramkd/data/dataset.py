import torch
from torch.utils.data import Dataset


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
