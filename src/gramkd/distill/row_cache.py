import torch


class RowCache:
    """A tensor per data row (the batch's `index`), computed once: for values that depend on the
    frozen teacher alone, such as its Gram matrices, when its outputs are cached per row too."""

    def __init__(self, num_rows: int):
        self.num_rows = num_rows
        self.values: torch.Tensor | None = None
        self.filled = torch.zeros(num_rows, dtype=torch.bool)
        self.complete = False  # every row filled: reads need no check

    def get_or_compute(self, index: torch.Tensor, compute) -> torch.Tensor:
        if self.complete or (self.values is not None and bool(self.filled[index.cpu()].all())):
            return self.values.index_select(0, index if index.device == self.values.device else index.to(self.values.device))
        value = compute().detach()
        if self.values is None:
            self.values = value.new_zeros((self.num_rows, *value.shape[1:]))
        self.values[index.to(value.device)] = value
        self.filled[index.cpu()] = True
        self.complete = bool(self.filled.all())
        return value
