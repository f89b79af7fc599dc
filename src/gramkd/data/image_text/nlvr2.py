"""NLVR2 (two images, one statement): JSON lines `train.json`, `dev.json`, `test1.json`.

Each line has `sentence`, `label` ("True"/"False") and `identifier` `split-set-pair-sentence`
(e.g. `dev-850-0-0`); train lines also have `directory`. The images of an example are
`<split>-<set>-<pair>-img0.png` (left) and `-img1.png` (right). Accepted places, relative to the
data folder (or to data.images), the first that exists:
  train:     images/train/<directory>/, train/<directory>/, images/train/, train/
  dev/test1: images/<split>/, <split>/
"""

from pathlib import Path

from gramkd.data.image_text.layout import Layout, SplitSource
from gramkd.data.image_text.records import Example, Line
from gramkd.errors import GramkdError

FIELDS = ("identifier", "sentence", "label")
CLASSES = {"False": 0, "True": 1, False: 0, True: 1}


def read_example(line: Line, source: SplitSource) -> Example:
    identifier = line.text("identifier", FIELDS)
    parts = identifier.split("-")
    if len(parts) < 4 or not all(parts):
        raise GramkdError(f"{line.where}: identifier {identifier!r} is not split-set-pair-sentence (like 'dev-850-0-0')")
    prefix = "-".join(parts[:-1])
    stem = source.file.stem
    directory = line.record.get("directory") if stem == "train" else None
    key = (stem, None if directory is None else str(directory))
    if key not in source.memo:
        source.memo[key] = image_folder(source.image_root, *key)
    folder = source.memo[key]
    images = (folder / f"{prefix}-img0.png", folder / f"{prefix}-img1.png")
    label = line.label("label", FIELDS, CLASSES)
    return Example(line.where, line.text("sentence", FIELDS), label, images, tuple(source.shown(p) for p in images))


def image_folder(root: Path, split: str, directory: str | None) -> Path:
    """The first accepted folder that exists (the first candidate if none does, for the message)."""
    candidates = [root / "images" / split, root / split]
    if directory is not None:
        candidates = [root / "images" / split / directory, root / split / directory] + candidates
    return next((c for c in candidates if c.is_dir()), candidates[0])


LAYOUT = Layout(
    name="nlvr2",
    split_files={"train": ("train.json",), "val": ("dev.json",), "test": ("test1.json",)},
    image_modalities=("left", "right"),
    num_classes=2,
    label_field="label",
    read_example=read_example,
    default_image_root=lambda folder: folder,
)


def detect(folder: Path) -> bool:
    return (folder / "train.json").is_file()
