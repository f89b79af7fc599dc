import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
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


def every_row_once_across_ranks(num_rows: int) -> Sampler[int] | None:
    """Under DDP, this rank's share of `num_rows` rows in order, each row on exactly one rank (the
    ranks' shares may differ by one row): for the test split, whose steps make no collective call.
    Lightning's own sampler repeats rows until every rank has as many, and the test metrics would
    count those twice. None in one process, and with fewer rows than ranks (Lightning's then)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return None
    ranks = torch.distributed.get_world_size()
    if ranks < 2 or num_rows < ranks:
        return None
    return UnrepeatedDistributedSampler(range(num_rows), num_replicas=ranks, rank=torch.distributed.get_rank(), shuffle=False)
