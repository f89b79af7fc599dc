"""The frozen teacher's outputs per data row, computed once and reused by every later epoch."""

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from gramkd.nets import MultimodalOutput

FIELDS = ("logits", "modality_features", "modality_mask", "fused")


class TeacherOutputCache:
    """Teacher outputs by row (the batch's `index`), for the full pass (`kind="full"`) and for
    the batched single-modality pass (`kind="single"`).

    In memory by default; with `folder`, rows live in .npy memory maps there (for data that does
    not fit in memory), in a sub-folder named by `key` — a hash of the teacher's weights and the
    data's config — so a changed teacher or data never reads stale rows. A row counts as cached
    only once its `filled` flag is written, after the row itself.
    """

    def __init__(self, num_rows: int, key: str, folder: str | Path | None = None):
        self.num_rows, self.key = num_rows, key
        self.folder = Path(folder) / key if folder else None
        self.storage: dict[str, dict[str, np.ndarray | torch.Tensor]] = {}
        self.filled: dict[str, np.ndarray | torch.Tensor] = {}
        self.hits = self.misses = 0

    def get_or_compute(self, kind: str, index: torch.Tensor, compute) -> MultimodalOutput:
        rows = index.cpu()
        if kind not in self.filled:
            self._open_existing(kind)
        if kind in self.filled and bool(_as_tensor(self.filled[kind][rows.numpy()]).all()):
            self.hits += 1
            return self._gather(kind, rows, index.device)
        self.misses += 1
        out = compute()
        self._store(kind, rows, out)
        return out

    def _gather(self, kind: str, rows: torch.Tensor, device) -> MultimodalOutput:
        fields = {name: _as_tensor(store[rows.numpy()]).to(device) for name, store in self.storage[kind].items()}
        return MultimodalOutput(**fields)

    def _store(self, kind: str, rows: torch.Tensor, out: MultimodalOutput) -> None:
        if kind not in self.storage:
            self._allocate(kind, out)
        for name in FIELDS:
            value = getattr(out, name).detach().cpu()
            self.storage[kind][name][rows.numpy()] = value.numpy() if self.folder else value
        self.filled[kind][rows.numpy()] = True

    def _open_existing(self, kind: str) -> None:
        """Rows an earlier run with the same key left on disk."""
        folder = self.folder / kind if self.folder else None
        if folder is None or not (folder / "filled.npy").is_file():
            return
        try:
            stores = {name: np.load(folder / f"{name}.npy", mmap_mode="r+") for name in FIELDS}
            filled = np.load(folder / "filled.npy", mmap_mode="r+")
        except (OSError, ValueError):  # a file cut short: recompute those rows
            return
        if filled.shape == (self.num_rows,) and all(len(store) == self.num_rows for store in stores.values()):
            self.storage[kind], self.filled[kind] = stores, filled

    def _allocate(self, kind: str, out: MultimodalOutput) -> None:
        shapes = {name: (self.num_rows, *getattr(out, name).shape[1:]) for name in FIELDS}
        dtypes = {name: getattr(out, name).dtype for name in FIELDS}
        if self.folder is None:
            self.storage[kind] = {name: torch.zeros(shapes[name], dtype=dtypes[name]) for name in FIELDS}
            self.filled[kind] = torch.zeros(self.num_rows, dtype=torch.bool)
            return
        folder = self.folder / kind
        folder.mkdir(parents=True, exist_ok=True)
        self.storage[kind] = {name: _memmap(folder / f"{name}.npy", shapes[name], dtypes[name]) for name in FIELDS}
        self.filled[kind] = _memmap(folder / "filled.npy", (self.num_rows,), torch.bool)

    def flush(self) -> None:
        for kind, fields in self.storage.items():
            for store in (*fields.values(), self.filled[kind]):
                if isinstance(store, np.memmap):
                    store.flush()


def cache_key(teacher: torch.nn.Module, data_config: dict) -> str:
    """Hash of the teacher's weights and the data's (resolved) config: what the outputs depend on."""
    digest = hashlib.sha256(repr(sorted(data_config.items())).encode())
    for name, tensor in teacher.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _memmap(path: Path, shape: tuple, dtype: torch.dtype) -> np.memmap:
    np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
    if path.is_file():
        existing = np.load(path, mmap_mode="r+")
        if existing.shape == shape and existing.dtype == np_dtype:
            return existing
        os.remove(path)
    return np.lib.format.open_memmap(path, mode="w+", dtype=np_dtype, shape=shape)


def _as_tensor(value) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))
