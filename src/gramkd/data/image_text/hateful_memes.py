"""Hateful Memes (Facebook AI): `train.jsonl`, `dev_seen.jsonl` (or `dev.jsonl`), `test_seen.jsonl`.

Each line is `{"id", "img", "label", "text"}`, `img` a path like `img/42953.png` relative to the
data folder (or to data.images); label 1 = hateful. The original `test.jsonl` has no labels and is
refused: use `test_seen.jsonl` of the Phase 2 release.
"""

from pathlib import Path

from gramkd.data.image_text.layout import Layout, SplitSource
from gramkd.data.image_text.records import Example, Line

FIELDS = ("img", "label", "text")
CLASSES = {0: 0, 1: 1}


def read_example(line: Line, source: SplitSource) -> Example:
    image = source.image_root / line.text("img", FIELDS)
    return Example(line.where, line.text("text", FIELDS), line.label("label", FIELDS, CLASSES), (image,), (source.shown(image),))


LAYOUT = Layout(
    name="hateful_memes",
    split_files={"train": ("train.jsonl",), "val": ("dev_seen.jsonl", "dev.jsonl"), "test": ("test_seen.jsonl", "test.jsonl")},
    image_modalities=("image",),
    num_classes=2,
    label_field="label",
    read_example=read_example,
    default_image_root=lambda folder: folder,
    no_labels_hint="the labelled test split is test_seen.jsonl of the Phase 2 release",
)


def detect(folder: Path) -> bool:
    return (folder / "train.jsonl").is_file()
