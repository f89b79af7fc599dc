"""Batches of image + text examples: token ids and masks from memory, image rows read from the cache file."""

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from gramkd.data.dataset import one_row
from gramkd.data.disk_array import DiskArray


class ImageTextDataset(Dataset):
    """One split. `image_rows[m]` gives, per example, the row of image modality m in `images` (the split's
    cache). A batch gathers its rows, scales pixels to [0, 1], shifts them at random when `max_shift`
    is set (training augmentation), then normalises with `mean` and `std` (per channel).
    Served whole by `__getitems__`; the loader must use `gramkd.data.dataset.as_batch`.
    """

    def __init__(
        self,
        text: tuple[str, np.ndarray, np.ndarray],  # (modality name, ids [N, T] int32, mask [N, T] bool)
        images: DiskArray,
        image_rows: dict[str, np.ndarray],
        labels: np.ndarray,
        first_index: int,
        mean: torch.Tensor,
        std: torch.Tensor,
        max_shift: int = 0,
    ):
        self.text_name, ids, mask = text
        self.text_ids, self.text_mask = torch.from_numpy(ids), torch.from_numpy(mask)  # as given: int64 only per batch
        self.images, self.image_rows = images, image_rows
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.first_index = first_index
        self.mean, self.std, self.max_shift = mean.view(-1, 1, 1), std.view(-1, 1, 1), max_shift

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return one_row(self, i)

    def __getitems__(self, positions: list[int]) -> dict:
        rows = torch.as_tensor(positions, dtype=torch.long)
        inputs = {self.text_name: self.tokens(rows)}
        for name, image_rows in self.image_rows.items():
            inputs[name] = self._pixels(image_rows[rows.numpy()])
        return {
            "inputs": inputs,
            "present": {m: torch.ones(len(rows), dtype=torch.bool) for m in inputs},
            "target": self.labels[rows],
            "index": rows + self.first_index,
        }

    def tokens(self, rows: torch.Tensor) -> torch.Tensor:
        """[B, 2, T] int64: the rows' token ids and attention masks."""
        return torch.stack([self.text_ids[rows].long(), self.text_mask[rows].long()], dim=1)

    def _pixels(self, image_rows: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(self.images.take(image_rows)).float().div_(255)
        if self.max_shift:
            x = random_shift(x, self.max_shift)
        return (x - self.mean) / self.std


def random_shift(x: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Each image moved by a random whole number of pixels (up to max_shift each way), uncovered pixels 0."""
    batch, _, height, width = x.shape
    shifts = torch.randint(-max_shift, max_shift + 1, (batch, 2))
    theta = torch.zeros(batch, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2] = -2 * shifts[:, 0] / width  # grid x = where each output pixel samples from
    theta[:, 1, 2] = -2 * shifts[:, 1] / height
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
