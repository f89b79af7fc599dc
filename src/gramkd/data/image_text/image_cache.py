"""Decoded, resized images of one split as one uint8 .npy file `[U, C, H, W]`, built once, then read by rows.

The file's name carries a hash of the image files (paths, sizes, mtimes) and of the target size
and channels, so a changed image or setting gets a new file and an unchanged one is never decoded
again. It is written to a temporary name and moved into place under a file lock: an interrupted
or failed build leaves no cache behind, and concurrent jobs build it once.
"""

import hashlib
import os
from pathlib import Path

import numpy as np
from filelock import FileLock

from gramkd.data.disk_array import DiskArray
from gramkd.data.image_text.layout import SplitRecords
from gramkd.errors import GramkdError

CACHE_VERSION = 1
MODES = {1: "L", 3: "RGB"}
BLOCK_BYTES = 4 << 20  # decoded rows held before they are written


def image_cache_key(records: SplitRecords, size: tuple[int, int], channels: int) -> str:
    entries = [(str(path), *stats) for path, stats in zip(records.images, records.image_stats.tolist())]
    digest = hashlib.sha256(repr((CACHE_VERSION, tuple(size), channels, entries)).encode())
    return digest.hexdigest()[:16]


def cached_images(records: SplitRecords, size: tuple[int, int], channels: int, cache_dir: Path, prefix: str) -> DiskArray:
    """The split's images (rows in `records.images` order), decoding them only if no cache matches."""
    file = cache_dir / f"{prefix}-{records.split}-{image_cache_key(records, size, channels)}.npy"
    shape = (len(records.images), channels, *size)
    array = _open(file, shape)
    if array is not None:
        return array
    cache_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{file}.lock"):
        array = _open(file, shape)  # another job may have built it while we waited
        if array is None:
            _build(file, records, size, channels)
            array = _open(file, shape)
    return array


def decode_image(path: Path, size: tuple[int, int], channels: int) -> np.ndarray:
    """`[C, H, W]` uint8: decoded by Pillow, converted to grey (1) or RGB (3), resized to size = (H, W)."""
    from PIL import Image

    height, width = size
    with Image.open(path) as image:
        image.draft(MODES[channels], (width, height))  # JPEG: decode at a reduced scale when it is much larger
        image = image.convert(MODES[channels]).resize((width, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


def _open(file: Path, shape: tuple[int, ...]) -> DiskArray | None:
    if not file.is_file():
        return None
    try:
        mapped = np.load(file, mmap_mode="r")
    except (OSError, ValueError):
        return None
    if mapped.shape != shape or mapped.dtype != np.uint8:
        return None
    return DiskArray(file, mapped.offset, mapped.dtype, mapped.shape)


def _build(file: Path, records: SplitRecords, size: tuple[int, int], channels: int) -> None:
    """Decode every image into `file`, a block of rows at a time written with plain writes: the process
    holds one block (a mapped output would keep every written page in its resident set)."""
    shape = (len(records.images), channels, *size)
    block = np.empty((max(1, BLOCK_BYTES // (channels * size[0] * size[1])), *shape[1:]), np.uint8)
    temporary = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as out:
            np.lib.format.write_array_header_1_0(out, {"descr": "|u1", "fortran_order": False, "shape": shape})
            filled = 0
            for row in _progress(range(len(records.images)), f"decoding {records.split} images"):
                block[filled] = decode_checked(records, row, size, channels)
                filled += 1
                if filled == len(block):
                    out.write(block.data)
                    filled = 0
            out.write(block[:filled].data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, file)
    finally:
        temporary.unlink(missing_ok=True)


def decode_checked(records: SplitRecords, row: int, size: tuple[int, int], channels: int) -> np.ndarray:
    """Image `row` of the split decoded; a GramkdError naming its first use if it cannot be."""
    from PIL import Image

    try:
        return decode_image(Path(records.images[row]), size, channels)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        reason = str(err).splitlines()[0] if str(err).strip() else type(err).__name__
        raise GramkdError(f"{records.used_at(row)} cannot be decoded as an image ({reason}); replace or remove it") from None


def _progress(items, description: str):
    from rich.console import Console
    from rich.progress import track

    console = Console(stderr=True)
    return track(items, description=description, console=console, transient=True, disable=not console.is_terminal)
