"""Arrays read from disk a few rows at a time, so a data set larger than memory can be served.

A `DiskArray` is a picklable description of where an array's bytes lie in a file (path,
offset, dtype, shape), as np.memmap would map it. Reads copy just the rows asked for with
`os.preadv`, coalescing runs of consecutive rows into one read: the kernel's page cache keeps
what is read often, and the process holds one batch. (Not a memory map: on recent kernels a
mapped file is faulted in by large folios, so touching 256 random rows of a 400 MB mapping
put ~270 MB in the process's resident set, measured.)
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gramkd.errors import GramkdError


@dataclass(frozen=True)
class DiskArray:
    path: Path
    offset: int  # where element [0, ...] starts in the file
    dtype: np.dtype  # as stored (any byte order); bfloat16 is stored as uint16 and widened on read
    shape: tuple[int, ...]
    fortran_order: bool = False
    bfloat16: bool = False

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The given rows (any order, repeats allowed), as a new in-memory array."""
        rows = np.asarray(rows, dtype=np.int64)
        if self.fortran_order:  # a row is scattered over the file: let numpy gather it
            return self._widen(np.array(np.memmap(self.path, self.dtype, "r", self.offset, self.shape, "F")[rows]))
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        out = np.empty((len(rows), *self.shape[1:]), self.dtype)
        raw = out.reshape(len(rows), -1).view(np.uint8)
        run_starts = np.flatnonzero(np.diff(ordered, prepend=-2) != 1)  # runs of consecutive rows: one read each
        run_stops = np.append(run_starts[1:], len(rows))
        with open(self.path, "rb", buffering=0) as file:
            for start, stop in zip(run_starts.tolist(), run_stops.tolist()):
                self._read(file, int(ordered[start]), raw[start:stop])
        if not np.array_equal(order, np.arange(len(rows))):
            out[order] = out.copy()
        return self._widen(out)

    def slice(self, start: int, stop: int) -> np.ndarray:
        """Rows start..stop-1, as a new in-memory array."""
        return self.take(np.arange(start, stop))

    def _read(self, file, first_row: int, into: np.ndarray) -> None:
        wanted = into.nbytes
        done = os.preadv(file.fileno(), [memoryview(into).cast("B")], self.offset + first_row * self.row_bytes)
        while 0 < done < wanted:  # preadv may stop short (signals, very large reads)
            more = os.preadv(file.fileno(), [memoryview(into).cast("B")[done:]], self.offset + first_row * self.row_bytes + done)
            if more == 0:
                break
            done += more
        if done != wanted:
            raise GramkdError(
                f"{self.path} ended early (rows from {first_row}): the file changed or was cut short while in use; write it again"
            )

    def _widen(self, x: np.ndarray) -> np.ndarray:
        if not self.bfloat16:
            return x
        return (x.astype(np.uint32) << 16).view(np.float32)  # bfloat16 is the top half of a float32


@dataclass(frozen=True)
class InMemoryArray:
    """An array that could not be read by rows (a compressed .npz member): the same reads, from memory."""

    array: np.ndarray

    def __len__(self) -> int:
        return self.array.shape[0]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    @property
    def dtype(self) -> np.dtype:
        return self.array.dtype

    @property
    def nbytes(self) -> int:
        return self.array.nbytes

    def take(self, rows: np.ndarray) -> np.ndarray:
        return self.array[rows]

    def slice(self, start: int, stop: int) -> np.ndarray:
        return self.array[start:stop].copy()


def row_chunks(num_rows: int, row_bytes: int, chunk_bytes: int = 4 << 20):
    """(start, stop) pairs covering num_rows in blocks of about chunk_bytes."""
    step = max(1, chunk_bytes // max(row_bytes, 1))
    for start in range(0, num_rows, step):
        yield start, min(start + step, num_rows)
