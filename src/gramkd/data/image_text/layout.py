"""A public layout (Hateful Memes, SNLI-VE, NLVR2) described as data, and the reading all layouts share.

Reading happens in an order that touches nothing it need not: every split file is parsed and
checked (JSON, fields, labels, empty splits) first, then every referenced image is checked to
exist (one stat each), and only then may images be decoded, elsewhere.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

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
    """One split's examples, and the size and mtime of each image file they use (for the cache key)."""

    split: str
    file: Path
    examples: list[Example]
    image_stats: dict[Path, tuple[int, int]] = field(default_factory=dict)

    @property
    def images(self) -> list[Path]:
        """The distinct image files of the split, sorted: the rows of its image cache."""
        return sorted(self.image_stats)


def read_layout(layout: Layout, folder: Path, images: Path | None) -> dict[str, SplitRecords]:
    """Every split of `folder`, checked, with the image files' stats; reads no image."""
    image_root = images if images is not None else layout.default_image_root(folder)
    sources = {split: SplitSource(split, split_file(layout, folder, split), folder, image_root) for split in SPLITS}
    lines = {split: read_json_lines(source.file, folder) for split, source in sources.items()}
    for split, source in sources.items():
        check_labelled(layout, source, lines[split])
    splits = {
        split: SplitRecords(split, source.file, [layout.read_example(line, source) for line in lines[split]])
        for split, source in sources.items()
    }
    for records in splits.values():
        records.image_stats = stat_images(records.examples, images is None)
    return splits


def split_file(layout: Layout, folder: Path, split: str) -> Path:
    candidates = layout.split_files[split]
    for name in candidates:
        if (folder / name).is_file():
            return folder / name
    names = " or ".join(candidates)
    raise GramkdError(
        f"{folder} has no {names} (the {split} split of the {layout.name} layout); add it or point data.path at the right folder"
    )


def check_labelled(layout: Layout, source: SplitSource, lines: list[Line]) -> None:
    name = source.shown(source.file)
    if not lines:
        raise GramkdError(f"{name} holds no examples; the {source.split} split needs at least one")
    if not any(layout.label_field in line.record for line in lines):
        hint = f" ({layout.no_labels_hint})" if layout.no_labels_hint else ""
        raise GramkdError(
            f"{name} has no labels (no line has '{layout.label_field}'); the {source.split} split needs labelled examples{hint}"
        )


def stat_images(examples: list[Example], default_root: bool) -> dict[Path, tuple[int, int]]:
    """(size, mtime) of every image the examples use; a missing one is reported at its first use."""
    stats: dict[Path, tuple[int, int]] = {}
    for example in examples:
        for path, shown in zip(example.images, example.shown):
            if path in stats:
                continue
            try:
                info = os.stat(path)
            except OSError:
                hint = "" if not default_root else " (set data.images to the folder that holds the images if they live elsewhere)"
                raise GramkdError(f"{example.where}: {shown} does not exist{hint}") from None
            stats[path] = (info.st_size, info.st_mtime_ns)
    return stats
