import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gramkd.data.batch_transfer import BatchesStayWhereTheyAre
from gramkd.data.dataset import SplitLoaders
from gramkd.data.image_text.dataset import ImageTextDataset
from gramkd.data.image_text.formats import layout_of
from gramkd.data.image_text.image_cache import cached_images
from gramkd.data.image_text.layout import SPLITS, SplitRecords, read_layout
from gramkd.data.image_text.tokenizer import EncodedTexts, text_tokenizer
from gramkd.errors import GramkdError
from gramkd.nets.contract import ModalitySpec

TEXT = "text"


@dataclass
class PreparedSplits:
    records: dict[str, SplitRecords]
    texts: dict[str, EncodedTexts]
    vocab_size: int
    vocabulary_key: str  # see tokenizer.vocabulary_key


class ImageTextDataModule(SplitLoaders, BatchesStayWhereTheyAre):
    """Raw images and texts in a public layout: Hateful Memes, SNLI-VE or NLVR2 (see their modules in
    gramkd.data.image_text for the files each accepts); `format: auto` picks it from the files.

    Modalities: `text` (tokens `[2, T]`: ids, attention mask; position 0 is [CLS]) and `image`, or
    `left` and `right` for NLVR2 (float `[C, H, W]`, `(pixels / 255 - mean) / std`). Splits: train,
    val = the dev file, test = the test file; a batch's `index` numbers train, val, test rows in turn.

    Everything is checked before any image is decoded or any training starts, each problem one
    GramkdError line naming the file and line: JSON, fields, labels, empty or unlabelled splits,
    missing images, texts with no words. Images are decoded once into a cache in `cache_dir`
    (see image_cache); nothing is written into the data folder.
    """

    def __init__(
        self,
        path: str | None = None,
        format: str = "auto",
        images: str | None = None,
        image_size: tuple[int, int] = (224, 224),
        channels: int = 3,
        max_text_length: int = 40,
        tokenizer: str | None = None,
        mean: float | list[float] = 0.5,
        std: float | list[float] = 0.5,
        augment: bool = False,
        max_shift: int | None = None,
        batch_size: int = 32,
        seed: int = 0,
        num_workers: int = 0,
        pin_memory: bool = False,
        cache_dir: str | None = None,
    ):
        super().__init__()
        self.folder = _existing_folder(path, "data.path")
        self.images = _existing_folder(images, "data.images") if images is not None else None
        self.layout = layout_of(str(format), self.folder)
        self.image_size = _image_size(image_size)
        if channels not in (1, 3):
            raise GramkdError(f"data.channels is {channels}; use 1 (grey) or 3 (RGB)")
        self.channels = int(channels)
        self.mean, self.std = _per_channel(mean, "mean", channels), _per_channel(std, "std", channels)
        if (self.std <= 0).any():
            raise GramkdError(f"data.std must be positive, got {std}")
        self.max_text_length, self.tokenizer = int(max_text_length), tokenizer
        self.max_shift = _max_shift(max_shift, self.image_size) if augment else 0
        self.batch_size, self.seed = batch_size, seed
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        self._prepared: PreparedSplits | None = None
        self.datasets: dict[str, ImageTextDataset] = {}

    # -- what nets and the trainer ask ---------------------------------------------------------
    @property
    def random_augmentation(self) -> bool:
        """True when training images are shifted at random: a row's inputs differ between epochs."""
        return self.max_shift > 0

    @property
    def modalities(self) -> dict[str, dict]:
        image = ModalitySpec("image", (self.channels, *self.image_size)).as_config()
        tokens = ModalitySpec("tokens", (2, self.max_text_length), self.prepared.vocab_size).as_config()
        return {TEXT: tokens, **{name: dict(image) for name in self.layout.image_modalities}}

    @property
    def num_classes(self) -> int:
        return self.layout.num_classes

    @property
    def num_rows(self) -> int:
        """Examples of all splits together (the batch's `index` runs below it)."""
        return sum(len(records.labels) for records in self.prepared.records.values())

    @property
    def vocabulary_key(self) -> str:
        """Which token ids the text gets (a hash of the tokenizer's vocabulary): checkpoints record
        it, and a net is refused on text tokenised otherwise."""
        return self.prepared.vocabulary_key

    @property
    def prepared(self) -> PreparedSplits:
        """The checked splits and their token ids (no image decoded yet); built on first use."""
        if self._prepared is None:
            self._prepared = self._prepare()
        return self._prepared

    # -- building -------------------------------------------------------------------------------
    def _prepare(self) -> PreparedSplits:
        records = read_layout(self.layout, self.folder, self.images)
        tokenizer = text_tokenizer(self.tokenizer, self.vocabulary_texts(records), self.max_text_length, self.cache_dir)
        texts = {split: tokenizer.encode(records[split].texts) for split in SPLITS}
        for split in SPLITS:
            _check_words(records[split], texts[split])
            records[split].texts = []  # token ids from here
        return PreparedSplits(records, texts, tokenizer.vocab_size, tokenizer.vocabulary_key)

    def vocabulary_texts(self, records: dict) -> list[str]:
        """The texts a word-level tokenizer is fitted on: the training split's."""
        return records["train"].texts

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        prepared = self.prepared
        first_index = 0
        for split in SPLITS:
            records = prepared.records[split]
            images = cached_images(records, self.image_size, self.channels, self.cache_dir, self.layout.name)
            image_rows = {name: np.ascontiguousarray(records.image_rows[:, i]) for i, name in enumerate(self.layout.image_modalities)}
            labels = records.labels
            text = (TEXT, prepared.texts[split].ids, prepared.texts[split].mask)
            shift = self.max_shift if split == "train" else 0
            self.datasets[split] = ImageTextDataset(text, images, image_rows, labels, first_index, self.mean, self.std, shift)
            first_index += len(labels)


def default_cache_dir() -> Path:
    """As conf/paths: $GRAMKD_CACHE_DIR, else $GRAMKD_LOG_DIR/cache, else logs/cache; then image_text/."""
    root = os.environ.get("GRAMKD_CACHE_DIR") or str(Path(os.environ.get("GRAMKD_LOG_DIR", "logs")) / "cache")
    return Path(root).expanduser() / "image_text"


def _check_words(records: SplitRecords, texts: EncodedTexts) -> None:
    empty = np.flatnonzero(texts.words == 0)
    if len(empty):
        row = empty[0]
        raise GramkdError(f"{records.where(row)}: the text {records.texts[row]!r} tokenises to nothing but special tokens; give it words")


def _existing_folder(path: str | None, key: str) -> Path:
    if path is None:
        raise GramkdError(f"{key} is required: pass {key}=DIR, the folder that holds the data")
    folder = Path(str(path)).expanduser()
    if not folder.is_dir():
        raise GramkdError(f"{key}={path} is not a folder; point it at the folder that holds the data")
    return folder.resolve()  # the image cache is keyed by absolute paths: one cache whatever the working directory


def _image_size(size) -> tuple[int, int]:
    values = [size, size] if isinstance(size, int) else list(size)
    if len(values) != 2 or not all(isinstance(v, int) and v > 0 for v in values):
        raise GramkdError(f"data.image_size must be [height, width] in positive pixels, got {size}")
    return int(values[0]), int(values[1])


def _per_channel(value, key: str, channels: int) -> torch.Tensor:
    values = [float(value)] * channels if isinstance(value, (int, float)) else [float(v) for v in value]
    if len(values) != channels:
        raise GramkdError(f"data.{key} has {len(values)} values for {channels} channels; give one number or one per channel")
    return torch.tensor(values, dtype=torch.float32)


def _max_shift(max_shift: int | None, size: tuple[int, int]) -> int:
    if max_shift is None:
        return max(1, min(size) // 8)
    if max_shift < 0:
        raise GramkdError(f"data.max_shift is {max_shift}; give a number of pixels >= 0")
    return int(max_shift)
