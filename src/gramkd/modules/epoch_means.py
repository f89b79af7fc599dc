import torch


class EpochMeans:
    """Batch-size-weighted running sums of per-step values, for their epoch means.

    Lightning's `self.log(on_epoch=True)` does the same bookkeeping at ~0.3 ms per value per step;
    this keeps it to one tensor add per value, and the module logs the means once per epoch.
    """

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def add(self, values: dict[str, torch.Tensor], size: int) -> None:
        for name, value in values.items():
            weighted = value.detach() * size
            self.sums[name] = self.sums[name] + weighted if name in self.sums else weighted
        self.count += size

    def pop_means(self) -> dict[str, torch.Tensor]:
        means = {name: total / max(self.count, 1) for name, total in self.sums.items()}
        self.sums, self.count = {}, 0
        return means
