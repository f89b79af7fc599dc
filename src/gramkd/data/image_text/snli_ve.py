"""SNLI-VE (visual entailment): `snli_ve_train.jsonl`, `snli_ve_dev.jsonl`, `snli_ve_test.jsonl`.

Each line has `Flikr30kID` (spelled so; "2248275918.jpg" in the published files, accepted with
or without ".jpg"), the hypothesis `sentence2` and `gold_label`: entailment (0), neutral (1) or
contradiction (2). Images are `<id>.jpg` under data.images, by default the first of
`flickr30k_images/`, `flickr30k-images/` in the data folder that exists, else the data folder.
"""

from pathlib import Path

from gramkd.data.image_text.layout import Layout, SplitSource
from gramkd.data.image_text.records import Example, Line

FIELDS = ("Flikr30kID", "sentence2", "gold_label")
CLASSES = {"entailment": 0, "neutral": 1, "contradiction": 2}
IMAGE_FOLDERS = ("flickr30k_images", "flickr30k-images")


def read_example(line: Line, source: SplitSource) -> Example:
    name = line.field("Flikr30kID", FIELDS)
    name = str(name) if type(name) is int else line.text("Flikr30kID", FIELDS)
    image = source.image_root / (name if name.lower().endswith(".jpg") else f"{name}.jpg")
    label = line.label("gold_label", FIELDS, CLASSES)
    return Example(line.where, line.text("sentence2", FIELDS), label, (image,), (source.shown(image),))


def default_image_root(folder: Path) -> Path:
    for name in IMAGE_FOLDERS:
        if (folder / name).is_dir():
            return folder / name
    return folder


LAYOUT = Layout(
    name="snli_ve",
    split_files={"train": ("snli_ve_train.jsonl",), "val": ("snli_ve_dev.jsonl",), "test": ("snli_ve_test.jsonl",)},
    image_modalities=("image",),
    num_classes=3,
    label_field="gold_label",
    read_example=read_example,
    default_image_root=default_image_root,
)


def detect(folder: Path) -> bool:
    return (folder / "snli_ve_train.jsonl").is_file()
