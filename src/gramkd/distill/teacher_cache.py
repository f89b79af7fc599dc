"""The frozen teacher's outputs per data row, computed once and reused by every later epoch."""

import json
import os
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock

from gramkd.nets import MultimodalOutput

LAYOUT_FILE = "layout.json"
# A kind's layout: field name -> (torch dtype name, shape of one row). Only the fields the
# teacher's output sets are stored.
Layout = dict[str, tuple[str, tuple[int, ...]]]


class TeacherOutputCache:
    """Teacher outputs by row (the batch's `index`), for the full pass (`kind="full"`) and for
    the batched single-modality pass (`kind="single"`).

    In memory by default; with `folder`, rows live in .npy memory maps there (for data that does
    not fit in memory), in a sub-folder named by `key` — a hash of the teacher's weights and the
    data's config (`gramkd.identity.net_key`) — so a changed teacher or data never reads stale
    rows. A row counts as cached only once its `filled` flag is written, after the row itself.
    Only the fields the teacher's output sets are stored, in any dtype, bit-exact: dtypes numpy
    lacks (bfloat16, float8…) go to disk as their raw bits.

    Rows an earlier run left on disk are read only after one live output of this run showed the
    same layout (fields, dtypes, row shapes): a teacher that now returns other fields refills the
    cache instead of reading stale rows. That one check per kind counts in `checks`.
    """

    def __init__(self, num_rows: int, key: str, folder: str | Path | None = None):
        self.num_rows, self.key = num_rows, key
        self.folder = Path(folder) / key if folder else None
        self.storage: dict[str, dict[str, np.ndarray | torch.Tensor]] = {}
        self.filled: dict[str, np.ndarray | torch.Tensor] = {}
        self.layouts: dict[str, Layout] = {}
        self.checked: set[str] = set()  # kinds whose stored layout a live output of this run confirmed
        self.hits = self.misses = self.checks = 0

    def get_or_compute(self, kind: str, index: torch.Tensor, compute) -> MultimodalOutput:
        rows = index.cpu().numpy()
        if kind not in self.filled:
            self._open_existing(kind)
        cached = kind in self.filled and bool(_as_tensor(self.filled[kind][rows]).all())
        if cached and kind in self.checked:
            self.hits += 1
            return self._gather(kind, rows, index.device)
        if cached:
            self.checks += 1
        else:
            self.misses += 1
        out = compute()
        self._store(kind, rows, out)
        self.checked.add(kind)
        return out

    def _gather(self, kind: str, rows: np.ndarray, device) -> MultimodalOutput:
        layout = self.layouts[kind]
        fields = {name: _from_storage(store[rows], layout[name][0]).to(device) for name, store in self.storage[kind].items()}
        return MultimodalOutput(**fields)

    def _store(self, kind: str, rows: np.ndarray, out: MultimodalOutput) -> None:
        tensors = out.tensors()
        layout = layout_of(tensors)
        if self.layouts.get(kind) != layout:
            self._allocate(kind, layout)
        for name, value in tensors.items():
            value = value.detach().cpu()
            self.storage[kind][name][rows] = _raw(value).numpy() if self.folder else value
        self.filled[kind][rows] = True

    def _open_existing(self, kind: str) -> None:
        """Rows an earlier run with the same key left on disk."""
        folder = self.folder / kind if self.folder else None
        if folder is None or not (folder / "filled.npy").is_file():
            return
        try:
            layout = _read_layout(folder / LAYOUT_FILE)
            stores = {name: np.load(folder / f"{name}.npy", mmap_mode="r+") for name in layout}
            filled = np.load(folder / "filled.npy", mmap_mode="r+")
            expected = {name: ((self.num_rows, *shape), _storage_dtype(dtype)) for name, (dtype, shape) in layout.items()}
        except (OSError, ValueError, TypeError, AttributeError):  # missing, cut short or unreadable: recompute
            return
        if (
            filled.shape == (self.num_rows,)
            and filled.dtype == np.bool_
            and all((stores[n].shape, stores[n].dtype) == expected[n] for n in layout)
        ):
            self.storage[kind], self.filled[kind], self.layouts[kind] = stores, filled, layout

    def _allocate(self, kind: str, layout: Layout) -> None:
        """Empty storage for `layout`; every row of `kind` cached so far is dropped. On disk, under
        a file lock: a job running beside this one may have allocated the same layout meanwhile,
        and then its files are opened instead (rows are the same whoever writes them)."""
        if self.folder is None:
            self._allocate_storage(kind, layout)
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.folder / f"{kind}.lock")):
            self._open_existing(kind)
            if self.layouts.get(kind) != layout:
                self._allocate_storage(kind, layout)

    def _allocate_storage(self, kind: str, layout: Layout) -> None:
        self.layouts[kind] = layout
        if self.folder is None:
            self.storage[kind] = {
                name: torch.zeros((self.num_rows, *shape), dtype=_dtype(dtype)) for name, (dtype, shape) in layout.items()
            }
            self.filled[kind] = torch.zeros(self.num_rows, dtype=torch.bool)
            return
        folder = self.folder / kind
        folder.mkdir(parents=True, exist_ok=True)
        for old in ("filled.npy", LAYOUT_FILE):  # first: no row counts as cached while the layout changes
            (folder / old).unlink(missing_ok=True)
        for stale in folder.glob("*.npy"):
            if stale.stem not in layout:
                stale.unlink()
        self.storage[kind] = {
            name: _memmap(folder / f"{name}.npy", (self.num_rows, *shape), _storage_dtype(dtype)) for name, (dtype, shape) in layout.items()
        }
        _write_layout(folder / LAYOUT_FILE, layout)
        self.filled[kind] = np.lib.format.open_memmap(folder / "filled.npy", mode="w+", dtype=np.bool_, shape=(self.num_rows,))

    def flush(self) -> None:
        for kind, fields in self.storage.items():
            for store in (*fields.values(), self.filled[kind]):
                if isinstance(store, np.memmap):
                    store.flush()


def layout_of(tensors: dict[str, torch.Tensor]) -> Layout:
    return {name: (str(value.dtype).removeprefix("torch."), tuple(value.shape[1:])) for name, value in tensors.items()}


def _dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, name)
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"{name!r} is not a torch dtype")
    return dtype


_RAW_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _raw_dtype(dtype: torch.dtype) -> torch.dtype:
    """`dtype` itself where numpy has it, else the integer type of its size (its raw bits)."""
    try:
        torch.empty(0, dtype=dtype).numpy()
        return dtype
    except TypeError:
        return _RAW_BITS[dtype.itemsize]


def _raw(value: torch.Tensor) -> torch.Tensor:
    """A view numpy can hold, with the same bits."""
    raw = _raw_dtype(value.dtype)
    return value if raw == value.dtype else value.view(raw)


def _storage_dtype(dtype_name: str) -> np.dtype:
    return torch.empty(0, dtype=_raw_dtype(_dtype(dtype_name))).numpy().dtype


def _from_storage(value, dtype_name: str) -> torch.Tensor:
    tensor, dtype = _as_tensor(value), _dtype(dtype_name)
    return tensor if tensor.dtype == dtype else tensor.view(dtype)


def _read_layout(path: Path) -> Layout:
    fields = json.loads(path.read_text())
    return {str(name): (str(dtype), tuple(int(s) for s in shape)) for name, (dtype, shape) in fields.items()}


def _write_layout(path: Path, layout: Layout) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps({name: [dtype, list(shape)] for name, (dtype, shape) in layout.items()}))
    os.replace(partial, path)


def _memmap(path: Path, shape: tuple, dtype: np.dtype) -> np.memmap:
    if path.is_file():
        try:
            existing = np.load(path, mmap_mode="r+")
            if existing.shape == shape and existing.dtype == dtype:
                return existing
        except (OSError, ValueError):
            pass
        os.remove(path)
    return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)


def _as_tensor(value) -> torch.Tensor:
    return value if isinstance(value, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(value))
