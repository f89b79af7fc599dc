"""A public layout (Hateful Memes, SNLI-VE, NLVR2) described as data, and the reading all layouts share.

Reading happens in an order that touches nothing it need not: every split file is parsed and
checked (JSON, fields, labels, empty splits) first, then every referenced image is checked to
exist (one stat each), and only then may images be decoded, elsewhere.
"""

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gramkd.data.image_text.records import Example, Line, read_json_lines, shown_path
from gramkd.errors import GramkdError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitSource:
    """Where one split's examples and images are."""

    split: str  # train / val / test
    file: Path  # its JSON-lines file
    folder: Path  # the data folder
    image_root: Path  # where image paths start (data.images, or the layout's default)
    memo: dict = field(default_factory=dict, compare=False)  # a reader's per-split lookups (folders found)

    def shown(self, path: Path) -> str:
        return shown_path(path, self.folder)


@dataclass(frozen=True)
class Layout:
    name: str
    split_files: dict[str, tuple[str, ...]]  # split -> candidate file names, preferred first
    image_modalities: tuple[str, ...]
    num_classes: int
    label_field: str
    read_example: Callable[[Line, SplitSource], Example]
    default_image_root: Callable[[Path], Path]  # the data folder -> where images lie by default
    no_labels_hint: str = ""


@dataclass
class SplitRecords:
    """One split as columns (one entry per example, no object per example): what the data module keeps.

    `images` are the distinct image files of the split, sorted as paths: the rows of its image cache;
    `image_rows[n, m]` is the row of example n's image of modality m. `texts` are released once tokenised.
    """

    split: str
    file: Path
    folder: Path  # the data folder: messages name files relative to it
    line_numbers: np.ndarray  # [N] int64, the example's line in `file`
    texts: list[str]
    labels: np.ndarray  # [N] int64
    image_rows: np.ndarray  # [N, M] int64
    images: list[str]
    image_stats: np.ndarray | None  # [U, 2] int64: (size, mtime_ns) of each image, for the cache key
    first_use: np.ndarray  # [U] int64: the first example that uses each image

    def where(self, row: int) -> str:
        """How messages name example `row`: "train.jsonl line 17"."""
        return f"{shown_path(self.file, self.folder)} line {self.line_numbers[row]}"

    def used_at(self, image: int) -> str:
        """How messages name image `image` at its first use: "train.jsonl line 3: img/3.png"."""
        return f"{self.where(self.first_use[image])}: {shown_path(Path(self.images[image]), self.folder)}"


def read_layout(layout: Layout, folder: Path, images: Path | None) -> dict[str, SplitRecords]:
    """Every split of `folder`, checked, with the image files' stats; reads no image.

    The split files are read twice: first every line of every file is parsed (JSON errors, labels
    present), then each file again, a line at a time, into columns: no split's lines are held at once."""
    image_root = images if images is not None else layout.default_image_root(folder)
    sources = {split: SplitSource(split, split_file(layout, folder, split), folder, image_root) for split in SPLITS}
    summaries = {split: labelled_lines(layout, read_json_lines(source.file, folder)) for split, source in sources.items()}
    for split, source in sources.items():
        check_labelled(layout, source, *summaries[split])
    splits = {split: collect_examples(layout, source, read_json_lines(source.file, folder)) for split, source in sources.items()}
    for records in splits.values():
        stat_images(records, images is None)
        sort_images(records)
    return splits


def labelled_lines(layout: Layout, lines: Iterator[Line]) -> tuple[int, bool]:
    """How many lines, and whether any has the label field."""
    count, labelled = 0, False
    for line in lines:
        count += 1
        labelled = labelled or layout.label_field in line.record
    return count, labelled


def collect_examples(layout: Layout, source: SplitSource, lines: Iterator[Line]) -> SplitRecords:
    """The examples of `lines` as columns, their images numbered in order of first use (not sorted yet)."""
    numbers, texts, labels, rows, first_use = [], [], [], [], []
    image_numbers: dict[str, int] = {}  # strings: a Path holds several objects
    for row, line in enumerate(lines):
        example = layout.read_example(line, source)
        numbers.append(line.number)
        texts.append(example.text)
        labels.append(example.label)
        for path in map(str, example.images):
            if path not in image_numbers:
                image_numbers[path] = len(image_numbers)
                first_use.append(row)
            rows.append(image_numbers[path])
    image_rows = np.array(rows, dtype=np.int64).reshape(len(numbers), len(layout.image_modalities))
    as_array = lambda values: np.array(values, dtype=np.int64)  # noqa: E731
    images = list(image_numbers)
    return SplitRecords(
        source.split, source.file, source.folder, as_array(numbers), texts, as_array(labels), image_rows, images, None, as_array(first_use)
    )


def sort_images(records: SplitRecords) -> None:
    """Number the images in path order (the cache's rows)."""
    paths = records.images
    order = sorted(range(len(paths)), key=lambda i: Path(paths[i]))
    rank = np.empty(len(paths), dtype=np.int64)
    rank[order] = np.arange(len(paths))
    records.image_rows = rank[records.image_rows]
    records.images = [paths[i] for i in order]
    records.image_stats, records.first_use = records.image_stats[order], records.first_use[order]


def split_file(layout: Layout, folder: Path, split: str) -> Path:
    candidates = layout.split_files[split]
    for name in candidates:
        if (folder / name).is_file():
            return folder / name
    names = " or ".join(candidates)
    raise GramkdError(
        f"{folder} has no {names} (the {split} split of the {layout.name} layout); add it or point data.path at the right folder"
    )


def check_labelled(layout: Layout, source: SplitSource, lines: int, labelled: bool) -> None:
    name = source.shown(source.file)
    if not lines:
        raise GramkdError(f"{name} holds no examples; the {source.split} split needs at least one")
    if not labelled:
        hint = f" ({layout.no_labels_hint})" if layout.no_labels_hint else ""
        raise GramkdError(
            f"{name} has no labels (no line has '{layout.label_field}'); the {source.split} split needs labelled examples{hint}"
        )


def stat_images(records: SplitRecords, default_root: bool) -> None:
    """(size, mtime_ns) of every image; a missing one is reported at its first use (images in order of first use)."""
    records.image_stats = np.empty((len(records.images), 2), dtype=np.int64)
    for i, path in enumerate(records.images):
        try:
            info = os.stat(path)
        except OSError:
            hint = "" if not default_root else " (set data.images to the folder that holds the images if they live elsewhere)"
            raise GramkdError(f"{records.used_at(i)} does not exist{hint}") from None
        records.image_stats[i] = info.st_size, info.st_mtime_ns
