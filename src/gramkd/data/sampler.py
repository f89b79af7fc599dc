import torch
from torch.utils.data import Sampler


class EpochSeededSampler(Sampler[int]):
    """A shuffling sampler whose order is a function of (seed, epoch) alone.

    Lightning calls `set_epoch` before every epoch, so a run resumed at epoch k sees the very
    batches an uninterrupted run sees at epoch k (a sampler with a running generator would not).
    """

    def __init__(self, num_rows: int, seed: int):
        self.num_rows, self.seed, self.epoch = num_rows, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_rows

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.num_rows, generator=generator).tolist())
