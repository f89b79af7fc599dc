"""Find the arrays of a features folder and open them without reading their data.

A folder holds one array per modality (`<modality>.npy`, `<modality>.npz` or
`<modality>.safetensors` with a single array, or one `.npz` / `.safetensors` file with one array
per modality, named by its keys), `labels.npy`, and optionally `split.npy` and
`<modality>.present.npy` masks. Only headers are read here; every failure is a GramkdError that
names the file (and key) and says what to do.
"""

import json
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gramkd.data.disk_array import DiskArray, InMemoryArray
from gramkd.errors import GramkdError, first_line

ARRAY_SUFFIXES = (".npy", ".npz", ".safetensors")
LABELS, SPLIT, PRESENT_SUFFIX = "labels.npy", "split.npy", ".present.npy"
RESERVED = ("labels", "split")
SAFETENSORS_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "BF16": np.uint16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U64": np.uint64,
    "U32": np.uint32,
    "U16": np.uint16,
    "U8": np.uint8,
}
HOW_TO_WRITE = {
    ".npy": "write it again with numpy.save",
    ".npz": "write it again with numpy.savez",
    ".safetensors": "write it again with safetensors.numpy.save_file",
}


@dataclass
class ModalityArray:
    """One modality's array and where it came from (for messages)."""

    name: str
    file: Path
    key: str | None  # the array's key inside a several-array .npz / .safetensors file
    array: DiskArray | InMemoryArray

    @property
    def where(self) -> str:
        return f"{self.file}" if self.key is None else f"{self.file} (key '{self.key}')"

    @property
    def is_float(self) -> bool:
        return getattr(self.array, "bfloat16", False) or self.array.dtype.kind == "f"


@dataclass
class FeatureFolder:
    path: Path
    modalities: dict[str, ModalityArray]  # sorted by name
    present_files: dict[str, Path] = field(default_factory=dict)  # modality -> <modality>.present.npy
    split_file: Path | None = None


def find_arrays(path: str | Path | None) -> FeatureFolder:
    """The modality arrays of a folder (opened, not read), its present masks and split file."""
    if path is None or str(path) in ("", "???"):
        raise GramkdError(
            "data.path is not set: pass data.path=DIR, a folder with one array file per modality and labels.npy "
            "(see 'Your own data' in the README)"
        )
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise GramkdError(
            f"data.path {folder} {'is not a folder' if folder.exists() else 'does not exist'}: pass the folder that holds the feature files"
        )
    if not (folder / LABELS).is_file():
        raise GramkdError(f"{folder} has no {LABELS}: save the class of each row there (numpy.save, integers from 0, one per row)")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    modalities: dict[str, ModalityArray] = {}
    present_files: dict[str, Path] = {}
    for file in files:
        if file.name in (LABELS, SPLIT):
            continue
        if file.name.endswith(PRESENT_SUFFIX):
            present_files[file.name[: -len(PRESENT_SUFFIX)]] = file
        elif file.suffix in ARRAY_SUFFIXES:
            for found in _open_file(file):
                _add(modalities, found)
    if not modalities:
        raise GramkdError(f"{folder} holds no modality arrays: save one array per modality as <modality>.npy, .npz or .safetensors")
    for name, mask_file in present_files.items():
        if name not in modalities:
            raise GramkdError(
                f"{mask_file} is a present mask for modality '{name}', which {folder} does not have (it has: {', '.join(sorted(modalities))})"
            )
    split_file = folder / SPLIT if (folder / SPLIT).is_file() else None
    return FeatureFolder(folder, dict(sorted(modalities.items())), present_files, split_file)


def _add(modalities: dict[str, ModalityArray], found: ModalityArray) -> None:
    if found.name in RESERVED or found.name.endswith(".present"):
        raise GramkdError(
            f"{found.where} would be a modality named '{found.name}', a name gramkd reserves: "
            f"put labels in labels.npy, the split in split.npy and masks in <modality>.present.npy, or rename the modality"
        )
    if found.name in modalities:
        raise GramkdError(f"modality '{found.name}' is given twice: by {modalities[found.name].where} and by {found.where}; keep one")
    modalities[found.name] = found


def _open_file(file: Path) -> list[ModalityArray]:
    try:
        if file.suffix == ".npy":
            arrays = {None: _open_npy(file)}
        elif file.suffix == ".npz":
            arrays = _open_npz(file)
        else:
            arrays = _open_safetensors(file)
    except GramkdError:
        raise
    except Exception as err:  # corrupt or truncated file, or no permission
        raise GramkdError(f"cannot read {file}: {first_line(err)}; {HOW_TO_WRITE[file.suffix]}") from None
    if not arrays:
        raise GramkdError(f"{file} holds no arrays; {HOW_TO_WRITE[file.suffix]}")
    if len(arrays) == 1:  # a single array is the modality named by the file
        return [_checked(ModalityArray(file.stem, file, None, array)) for array in arrays.values()]
    return [_checked(ModalityArray(key, file, key, array)) for key, array in arrays.items()]


def _checked(found: ModalityArray) -> ModalityArray:
    shape, dtype = found.array.shape, found.array.dtype
    if not (found.is_float or dtype.kind in "iu"):
        raise GramkdError(f"{found.where} holds {dtype} values; modality arrays must be numbers (float16/32/64, bfloat16 or integers)")
    if len(shape) not in (2, 3):
        raise GramkdError(
            f"{found.where} has shape {tuple(shape)}; a modality needs [N, D] (one vector per row) or [N, T, D] (a sequence per row)"
        )
    if 0 in shape:
        raise GramkdError(f"{found.where} has shape {tuple(shape)}, which holds no values; every row needs at least one feature")
    return found


def _open_npy(file: Path) -> DiskArray:
    with open(file, "rb") as raw:
        array = _npy_header(file, raw, key=None)
    _check_length(array, file.stat().st_size, file, None)
    return array


def _open_npz(file: Path) -> dict[str, DiskArray | InMemoryArray]:
    """Members of a .npz: stored ones (numpy.savez) are read by rows, compressed ones read into memory."""
    arrays = {}
    with zipfile.ZipFile(file) as archive, open(file, "rb") as raw:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            key = info.filename[: -len(".npy")]
            if info.compress_type == zipfile.ZIP_STORED:
                arrays[key] = _stored_member(file, raw, info, key)
            else:
                with archive.open(info) as member:
                    arrays[key] = InMemoryArray(np.lib.format.read_array(member, allow_pickle=False))
    return arrays


def _stored_member(file: Path, raw, info: zipfile.ZipInfo, key: str) -> DiskArray:
    raw.seek(info.header_offset)
    local = raw.read(30)  # the member's local header: name and extra-field lengths at bytes 26..29
    if len(local) < 30 or local[:4] != b"PK\x03\x04":
        raise GramkdError(f"cannot read {file} (key '{key}'): the archive is damaged; {HOW_TO_WRITE['.npz']}")
    name_length, extra_length = struct.unpack("<HH", local[26:30])
    start = info.header_offset + 30 + name_length + extra_length
    raw.seek(start)
    array = _npy_header(file, raw, key)
    _check_length(array, start + info.file_size, file, key)
    return array


def _npy_header(file: Path, raw, key: str | None) -> DiskArray:
    """The array that the .npy header at the stream's position describes; its data follows the header."""
    version = np.lib.format.read_magic(raw)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(raw)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(raw)
    else:
        where = f"{file}" if key is None else f"{file} (key '{key}')"
        raise GramkdError(f"cannot read {where}: .npy format version {version} is not supported; {HOW_TO_WRITE[file.suffix]}")
    return DiskArray(file, raw.tell(), dtype, tuple(shape), bool(fortran) and len(shape) > 1)


def _check_length(array: DiskArray, end: int, file: Path, key: str | None) -> None:
    if array.offset + array.nbytes > end:
        where = f"{file}" if key is None else f"{file} (key '{key}')"
        raise GramkdError(
            f"cannot read {where}: it is cut short ({end - array.offset} bytes of data where its header promises "
            f"{array.nbytes}); {HOW_TO_WRITE[file.suffix]}"
        )


def _open_safetensors(file: Path) -> dict[str, DiskArray]:
    from safetensors import safe_open

    with safe_open(str(file), framework="numpy"):  # validates the header and that the data covers it
        pass
    with open(file, "rb") as raw:
        (header_length,) = struct.unpack("<Q", raw.read(8))
        header = json.loads(raw.read(header_length))
    arrays = {}
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        if entry["dtype"] not in SAFETENSORS_DTYPES:
            raise GramkdError(
                f"{file} (key '{key}') holds {entry['dtype']} values; modality arrays must be numbers (F16/F32/F64, BF16 or integers)"
            )
        begin, _ = entry["data_offsets"]
        dtype = np.dtype(SAFETENSORS_DTYPES[entry["dtype"]]).newbyteorder("<")
        arrays[key] = DiskArray(file, 8 + header_length + begin, dtype, tuple(entry["shape"]), bfloat16=entry["dtype"] == "BF16")
    return dict(sorted(arrays.items(), key=lambda item: item[1].offset))


def read_small_array(file: Path, what: str) -> np.ndarray:
    """labels.npy, split.npy or a present mask: one value per row, read whole."""
    try:
        array = np.load(file, allow_pickle=False)
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise GramkdError(f"{file} holds Python objects; save {what} as a plain numpy array (strings or integers)") from None
        raise GramkdError(f"cannot read {file}: {first_line(err)}; {HOW_TO_WRITE['.npy']}") from None
    except Exception as err:
        raise GramkdError(f"cannot read {file}: {first_line(err)}; {HOW_TO_WRITE['.npy']}") from None
    if not isinstance(array, np.ndarray):
        raise GramkdError(f"cannot read {file}: not a .npy array file; {HOW_TO_WRITE['.npy']}")
    if array.ndim != 1:
        raise GramkdError(f"{file} has shape {array.shape}; save {what} as one value per row, shape [N]")
    return array
