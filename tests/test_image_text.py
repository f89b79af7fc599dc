"""image_text: the three public layouts read into contract batches, the word tokenizer, the image
cache, and every bad input refused in one line that names the file and line, touching nothing."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning import Callback
from PIL import Image

from gramkd.data.image_text import ImageTextDataModule, image_cache
from gramkd.data.image_text.dataset import random_shift
from gramkd.errors import GramkdError

RNG = np.random.default_rng(0)
H, W = 6, 8  # fixture images are this size, so that reading them at this size is exact


# -- fixtures: tiny folders in each layout ----------------------------------------------------------
def write_image(path: Path, mode: str = "RGB", fmt: str = "PNG") -> np.ndarray:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (H, W, 3) if mode == "RGB" else (H, W)
    pixels = RNG.integers(0, 256, shape, dtype=np.uint8)
    Image.fromarray(pixels, mode).save(path, format=fmt)
    return pixels


def write_lines(path: Path, records: list) -> None:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))


MEMES = {
    "train.jsonl": [(1, "Hello world", 0), (2, "the cat sat!", 1), (3, "A dog", 0), (4, "hello DOG", 1)],
    "dev_seen.jsonl": [(5, "the cat", 1), (6, "world", 0)],
    "test_seen.jsonl": [(7, "zebra dog", 0), (8, "hello", 1)],
}


@pytest.fixture
def memes(tmp_path) -> Path:
    folder = tmp_path / "memes"
    for file, rows in MEMES.items():
        for i, _, _ in rows:
            write_image(folder / "img" / f"{i}.png")
        write_lines(folder / file, [{"id": i, "img": f"img/{i}.png", "label": y, "text": t} for i, t, y in rows])
    return folder


@pytest.fixture
def snli(tmp_path) -> Path:
    folder = tmp_path / "snli"
    rows = {
        "train": [("11", "entailment"), ("12.jpg", "neutral"), ("13.jpg", "contradiction")],
        "dev": [("14.jpg", "neutral")],
        "test": [("15", "entailment")],
    }
    for split, examples in rows.items():
        for name, _ in examples:
            write_image(folder / "flickr30k_images" / f"{name.removesuffix('.jpg')}.jpg", fmt="JPEG")
        write_lines(
            folder / f"snli_ve_{split}.jsonl",
            [{"Flikr30kID": n, "sentence2": f"a photo {n}", "gold_label": y, "pairID": n} for n, y in examples],
        )
    return folder


@pytest.fixture
def nlvr2(tmp_path) -> Path:
    """train images under images/train/<directory>/, dev under dev/ (the published layouts), test1 under images/test1/."""
    folder = tmp_path / "nlvr2"
    places = {
        "train": lambda d: folder / "images" / "train" / str(d),
        "dev": lambda d: folder / "dev",
        "test1": lambda d: folder / "images" / "test1",
    }
    for split, place in places.items():
        lines = []
        for s in range(3 if split == "train" else 2):
            for side in (0, 1):
                write_image(place(s % 2) / f"{split}-{s}-0-img{side}.png", mode="L")
            line = {"identifier": f"{split}-{s}-0-0", "sentence": f"There are {s} dogs.", "label": "True" if s % 2 else "False"}
            if split == "train":
                line["directory"] = s % 2
            lines.append(line)
        write_lines(folder / f"{split}.json", lines)
    return folder


def load(folder: Path, **kwargs) -> ImageTextDataModule:
    kwargs = {
        "image_size": [H, W],
        "channels": 3,
        "max_text_length": 8,
        "batch_size": 64,
        "cache_dir": str(folder.parent / "cache"),
        **kwargs,
    }
    data = ImageTextDataModule(path=str(folder), **kwargs)
    data.setup()
    return data


def whole(data: ImageTextDataModule, split: str) -> dict:
    loader = {"train": data.train_dataloader, "val": data.val_dataloader, "test": data.test_dataloader}[split]()
    (batch,) = list(loader)
    order = batch["index"].argsort()  # training batches are shuffled
    return {
        "inputs": {m: x[order] for m, x in batch["inputs"].items()},
        "present": {m: x[order] for m, x in batch["present"].items()},
        "target": batch["target"][order],
        "index": batch["index"][order],
    }


def normalised(pixels: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.array(pixels)).float()
    x = x.permute(2, 0, 1) if x.dim() == 3 else x[None]
    return (x / 255 - 0.5) / 0.5


def decoded(path: Path, mode: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert(mode))


def words_of(data: ImageTextDataModule, tokens: torch.Tensor) -> list[str]:
    ids, mask = tokens
    vocab = json.loads(next(Path(data.cache_dir).glob("tokenizer-*.json")).read_text())["model"]["vocab"]
    names = {i: w for w, i in vocab.items()}
    return [names[int(i)] for i in ids[mask.bool()]]


# -- the layouts, read --------------------------------------------------------------------------------
def test_hateful_memes_batches_follow_the_contract(memes):
    data = load(memes)
    assert data.layout.name == "hateful_memes"  # format: auto
    assert list(data.modalities) == ["text", "image"] and data.num_classes == 2 and data.num_rows == 8
    assert data.modalities["image"] == {"kind": "image", "shape": [3, H, W], "vocab_size": None}
    batch = whole(data, "val")
    assert batch["inputs"]["image"].dtype == torch.float32 and batch["inputs"]["text"].dtype == torch.long
    assert batch["inputs"]["text"].shape == (2, 2, 8) and batch["target"].tolist() == [1, 0]
    assert batch["index"].tolist() == [4, 5] and all(p.dtype == torch.bool and p.all() for p in batch["present"].values())
    for row, (i, _, _) in enumerate(MEMES["dev_seen.jsonl"]):
        expected = normalised(decoded(memes / "img" / f"{i}.png", "RGB"))
        torch.testing.assert_close(batch["inputs"]["image"][row], expected, rtol=0, atol=0)
    assert words_of(data, batch["inputs"]["text"][0]) == ["[CLS]", "the", "cat", "[SEP]"]
    ids, mask = batch["inputs"]["text"][1]
    assert mask.tolist() == [1, 1, 1, 0, 0, 0, 0, 0] and ids[0] == 2 and ids[2] == 3 and (ids[3:] == 0).all()


def test_rows_are_numbered_across_splits(memes):
    data = load(memes, batch_size=3)
    seen = [i for split in ("train", "val", "test") for b in getattr(data, f"{split}_dataloader")() for i in b["index"].tolist()]
    assert sorted(seen) == list(range(data.num_rows)) and seen[4:] == [4, 5, 6, 7]
    labels = {int(i): int(y) for b in data.train_dataloader() for i, y in zip(b["index"], b["target"])}
    assert labels == {0: 0, 1: 1, 2: 0, 3: 1}


def test_word_tokenizer_is_fitted_on_training_texts_only(memes):
    data = load(memes)
    train_words = {"hello", "world", "the", "cat", "sat", "!", "a", "dog"}
    assert data.modalities["text"]["vocab_size"] == len(train_words) + 4
    test = whole(data, "test")["inputs"]["text"]
    assert words_of(data, test[0]) == ["[CLS]", "[UNK]", "dog", "[SEP]"]  # "zebra" appears only in the test split


def test_long_texts_are_cut_to_max_text_length_and_keep_their_sep(memes):
    data = load(memes, max_text_length=3)
    tokens = whole(data, "train")["inputs"]["text"]
    assert tokens.shape == (4, 2, 3) and (tokens[:, 0, 0] == 2).all() and (tokens[:, 0, 2] == 3).all() and (tokens[:, 1] == 1).all()


def test_texts_encoded_in_chunks_equal_one_batch():
    from gramkd.data.image_text.tokenizer import WordTokenizer, fit_word_tokenizer, in_chunks

    texts = [" ".join(["cat", "dog", "sat"][: 1 + i % 3] * (1 + i % 4)) for i in range(7)]
    tokenizer = WordTokenizer(fit_word_tokenizer(texts), max_length=6)
    whole, chunked = tokenizer._encode(texts), in_chunks(tokenizer._encode, texts, chunk=3)  # chunks of 3, 3, 1
    for name in ("ids", "mask", "words"):
        assert getattr(chunked, name).dtype == getattr(whole, name).dtype and np.array_equal(getattr(chunked, name), getattr(whole, name))


def test_snli_ve_reads_ids_with_and_without_jpg_in_grey(snli):
    data = load(snli, channels=1, mean=[0.25], std=[2.0])
    assert data.layout.name == "snli_ve" and data.num_classes == 3
    batch = whole(data, "train")
    assert batch["target"].tolist() == [0, 1, 2] and batch["inputs"]["image"].shape == (3, 1, H, W)
    for row, name in enumerate(["11", "12", "13"]):
        grey = torch.from_numpy(np.array(decoded(snli / "flickr30k_images" / f"{name}.jpg", "L"))).float()[None]
        torch.testing.assert_close(batch["inputs"]["image"][row], (grey / 255 - 0.25) / 2.0, rtol=0, atol=0)


def test_nlvr2_reads_left_and_right_from_the_published_places(nlvr2):
    data = load(nlvr2, channels=1)
    assert data.layout.name == "nlvr2" and list(data.modalities) == ["text", "left", "right"]
    train = whole(data, "train")
    assert train["target"].tolist() == [0, 1, 0] and train["inputs"]["left"].shape == (3, 1, H, W)
    for s in range(3):
        for side, name in enumerate(("left", "right")):
            png = decoded(nlvr2 / "images" / "train" / str(s % 2) / f"train-{s}-0-img{side}.png", "L")
            torch.testing.assert_close(train["inputs"][name][s], normalised(png), rtol=0, atol=0)
    dev = whole(data, "val")
    torch.testing.assert_close(dev["inputs"]["right"][1], normalised(decoded(nlvr2 / "dev" / "dev-1-0-img1.png", "L")), rtol=0, atol=0)
    assert words_of(data, train["inputs"]["text"][2]) == ["[CLS]", "there", "are", "2", "dogs", ".", "[SEP]"]


def test_images_are_resized_to_image_size(memes):
    batch = whole(load(memes, image_size=[4, 5], channels=1), "train")
    assert batch["inputs"]["image"].shape == (4, 1, 4, 5)
    with Image.open(memes / "img" / "1.png") as image:
        expected = np.asarray(image.convert("L").resize((5, 4), Image.Resampling.BILINEAR))
    torch.testing.assert_close(batch["inputs"]["image"][0, 0], normalised(expected)[0], rtol=0, atol=0)


def test_a_pretrained_tokenizer_from_a_folder(memes, tmp_path):
    from transformers import BertTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "the", "cat", "dog"]
    BertTokenizer(vocab={w: i for i, w in enumerate(words)}).save_pretrained(tmp_path / "tok")
    data = load(memes, tokenizer=str(tmp_path / "tok"))
    assert data.modalities["text"]["vocab_size"] == 10
    tokens = whole(data, "train")["inputs"]["text"]
    assert tokens[0, 0].tolist() == [2, 5, 6, 3, 0, 0, 0, 0] and tokens[0, 1].tolist() == [1, 1, 1, 1, 0, 0, 0, 0]


# -- augmentation ---------------------------------------------------------------------------------------
def test_random_shift_moves_each_image_by_whole_pixels():
    torch.manual_seed(0)
    x = torch.rand(16, 2, 5, 7) + 1  # no zeros, so that uncovered pixels show
    shifted = random_shift(x, 2)
    for original, moved in zip(x, shifted):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if torch.equal(moved, shift_by(original, dy, dx))]
        assert len(matches) == 1
    assert not torch.equal(shifted, x)


def shift_by(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    out = torch.zeros_like(image)
    _, h, w = image.shape
    out[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = image[
        :, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def test_augmentation_shifts_training_images_only_and_is_declared(memes):
    plain, augmented = load(memes), load(memes, augment=True, max_shift=2)
    assert not plain.random_augmentation and augmented.random_augmentation
    torch.testing.assert_close(whole(plain, "val")["inputs"]["image"], whole(augmented, "val")["inputs"]["image"], rtol=0, atol=0)
    torch.manual_seed(1)
    assert not torch.equal(whole(plain, "train")["inputs"]["image"], whole(augmented, "train")["inputs"]["image"])


# -- the image cache ------------------------------------------------------------------------------------
@pytest.fixture
def image_opens(monkeypatch) -> list:
    opened = []
    real_open = Image.open

    def counting_open(path, *args, **kwargs):
        opened.append(Path(path).name)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)
    return opened


def test_the_image_cache_is_reused_and_rebuilt_when_an_image_changes(memes, image_opens):
    first = whole(load(memes), "train")["inputs"]["image"]
    assert len(image_opens) == 8
    image_opens.clear()
    again = whole(load(memes), "train")["inputs"]["image"]
    assert image_opens == [] and torch.equal(first, again)
    new_pixels = write_image(memes / "img" / "2.png")
    changed = whole(load(memes), "train")["inputs"]["image"]
    assert image_opens == ["1.png", "2.png", "3.png", "4.png"]  # only the train split's cache is stale
    torch.testing.assert_close(changed[1], normalised(new_pixels), rtol=0, atol=0)


def test_an_interrupted_cache_build_leaves_no_cache(memes, monkeypatch):
    real_decode, calls = image_cache.decode_image, []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_decode(*args)

    monkeypatch.setattr(image_cache, "decode_image", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load(memes)
    assert [p.name for p in (memes.parent / "cache").iterdir() if ".npy" in p.name and not p.name.endswith(".lock")] == []


# -- bad input: one line, naming the file and line, and nothing under the data folder changed ----------
def edit_line(file: Path, number: int, change) -> None:
    lines = file.read_text().splitlines()
    lines[number - 1] = change(json.loads(lines[number - 1]))
    file.write_text("\n".join(lines) + "\n")


def as_json(record: dict) -> str:
    return json.dumps(record)


def broken_image(folder: Path) -> str:
    (folder / "img" / "2.png").write_bytes(b"not a png")
    return re.escape(
        f"train.jsonl line 2: img/2.png cannot be decoded as an image (cannot identify image file '{folder / 'img' / '2.png'}'); replace or remove it"
    )


BAD_MEMES = {
    "missing image": (
        lambda f: edit_line(f / "train.jsonl", 3, lambda r: as_json({**r, "img": "img/42953.png"})),
        "train.jsonl line 3: img/42953.png does not exist (set data.images to the folder that holds the images if they live elsewhere)",
    ),
    "undecodable image": (broken_image, None),
    "malformed json": (
        lambda f: edit_line(f / "train.jsonl", 2, lambda r: '{"id": 2, "img": '),
        "train.jsonl line 2 is not valid JSON (Expecting value at column 18); fix or remove that line",
    ),
    "not an object": (
        lambda f: edit_line(f / "dev_seen.jsonl", 2, lambda r: "[1, 2]"),
        "dev_seen.jsonl line 2 is not a JSON object; each line must be one {...} record",
    ),
    "missing field": (
        lambda f: edit_line(f / "dev_seen.jsonl", 1, lambda r: as_json({k: v for k, v in r.items() if k != "text"})),
        "dev_seen.jsonl line 1 has no 'text' field; every line needs 'img', 'label', 'text'",
    ),
    "unknown label": (
        lambda f: edit_line(f / "test_seen.jsonl", 2, lambda r: as_json({**r, "label": 2})),
        "test_seen.jsonl line 2: label 2 is not one of 0, 1",
    ),
    "boolean label": (
        lambda f: edit_line(f / "train.jsonl", 1, lambda r: as_json({**r, "label": True})),
        "train.jsonl line 1: label true is not one of 0, 1",
    ),
    "empty split": (
        lambda f: (f / "dev_seen.jsonl").write_text("\n"),
        "dev_seen.jsonl holds no examples; the val split needs at least one",
    ),
    "unlabelled split": (
        lambda f: write_lines(f / "test_seen.jsonl", [{"id": 7, "img": "img/7.png", "text": "a"}]),
        (
            "test_seen.jsonl has no labels (no line has 'label'); the test split needs labelled examples "
            "(the labelled test split is test_seen.jsonl of the Phase 2 release)"
        ),
    ),
    "text without words": (
        lambda f: edit_line(f / "test_seen.jsonl", 1, lambda r: as_json({**r, "text": "  "})),
        "test_seen.jsonl line 1: the text '  ' tokenises to nothing but special tokens; give it words",
    ),
    "missing split file": (
        lambda f: (f / "dev_seen.jsonl").unlink(),
        None,
    ),
}


def listing(folder: Path) -> list:
    return sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns, p.stat().st_size) for p in [folder, *folder.rglob("*")])


@pytest.mark.parametrize("case", list(BAD_MEMES))
def test_bad_input_is_refused_in_one_line_touching_nothing(memes, case):
    spoil, message = BAD_MEMES[case]
    returned = spoil(memes)
    if case == "missing split file":
        message = f"{memes} has no dev_seen.jsonl or dev.jsonl (the val split of the hateful_memes layout); add it or point data.path at the right folder"
    before = listing(memes)
    with pytest.raises(GramkdError) as caught:
        load(memes)
    text = str(caught.value)
    assert "\n" not in text
    assert re.fullmatch(returned, text) if message is None else text == message
    assert listing(memes) == before


def test_images_are_checked_to_exist_before_any_is_decoded(memes, image_opens):
    (memes / "img" / "1.png").write_bytes(b"broken")  # used by the first training line
    edit_line(memes / "test_seen.jsonl", 2, lambda r: as_json({**r, "img": "img/gone.png"}))
    with pytest.raises(GramkdError, match=r"^test_seen.jsonl line 2: img/gone.png does not exist"):
        load(memes)
    assert image_opens == []


def test_bad_labels_in_the_other_layouts(snli, nlvr2):
    edit_line(snli / "snli_ve_dev.jsonl", 1, lambda r: as_json({**r, "gold_label": "-"}))
    with pytest.raises(GramkdError, match=r'^snli_ve_dev.jsonl line 1: label "-" is not one of "entailment", "neutral", "contradiction"$'):
        load(snli)
    edit_line(nlvr2 / "test1.json", 2, lambda r: as_json({**r, "identifier": "test1-1"}))
    with pytest.raises(
        GramkdError, match=r"^test1.json line 2: identifier 'test1-1' is not split-set-pair-sentence \(like 'dev-850-0-0'\)$"
    ):
        load(nlvr2)


def test_a_missing_nlvr2_image_is_named_where_the_layout_puts_it(nlvr2):
    (nlvr2 / "images" / "train" / "1" / "train-1-0-img1.png").unlink()
    with pytest.raises(GramkdError, match=r"^train.json line 2: images/train/1/train-1-0-img1.png does not exist"):
        load(nlvr2)


def test_bad_settings_are_refused_in_one_line(memes, tmp_path):
    with pytest.raises(GramkdError, match=r"^unknown data.format 'coco'; choose one of: hateful_memes, snli_ve, nlvr2, auto$"):
        load(memes, format="coco")
    with pytest.raises(
        GramkdError, match=r"holds none of train.jsonl \(hateful_memes\), snli_ve_train.jsonl \(snli_ve\), train.json \(nlvr2\)"
    ):
        load(tmp_path)
    with pytest.raises(GramkdError, match=r"^data.channels is 2; use 1 \(grey\) or 3 \(RGB\)$"):
        load(memes, channels=2)
    with pytest.raises(GramkdError, match=r"^data.mean has 2 values for 3 channels"):
        load(memes, mean=[0.1, 0.2])


# -- training on each layout -------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["memes", "snli", "nlvr2"])
def test_one_epoch_trains_on_each_layout_and_opens_no_image_after_setup(layout, request, compose_fit, image_opens):
    """gramkd's own net on raw pixels and tokens; every epoch reads the decoded-image cache."""
    from gramkd.train import train_and_test

    folder = request.getfixturevalue(layout)
    channels = 1 if layout == "nlvr2" else 3
    cfg = compose_fit([
        "data=image_text", f"data.path={folder}", f"data.image_size=[{H},{W}]", f"data.channels={channels}", "data.max_text_length=8",
        "net=mm_image_text_student", "net.patch_size=2", "trainer.max_epochs=2", "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
    ])  # fmt: skip
    opened_by_setup = []

    class CountFromTheFirstEpoch(Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            opened_by_setup.extend(image_opens)
            image_opens.clear()

    from gramkd import train

    real_build_trainer = train.build_trainer
    counting = lambda c, extra_callbacks=None: real_build_trainer(c, [*(extra_callbacks or []), CountFromTheFirstEpoch()])  # noqa: E731
    request.getfixturevalue("monkeypatch").setattr(train, "build_trainer", counting)
    metrics, module, _ = train_and_test(cfg)
    assert opened_by_setup, "setup decodes the images once"
    assert image_opens == [], "no epoch opens an image file"
    assert metrics["modalities"] == list(module.net.modality_names) and 0 <= metrics["test/acc"] <= 1
