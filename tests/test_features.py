"""data=features: paired feature files in every layout, served as the source rows standardised
with train statistics; distillation on them end to end; and every bad input refused before
training in one line, with nothing that existed before touched."""

import importlib.util
import json
import pickle
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gramkd.config import files_fingerprint
from gramkd.data import FeaturesDataModule, feature_checks
from gramkd.data.disk_array import DiskArray, InMemoryArray
from gramkd.data.split import stratified_split
from gramkd.errors import GramkdError

from conftest import only_run_dir, run_gramkd

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("make_features", ROOT / "examples" / "make_features.py")
make_features = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_features)
LAYOUTS = make_features.LAYOUTS
write_features = make_features.write_features
QUIET = ["trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]
N = 90


def source(n: int = N, seed: int = 0):
    """(features, labels, present): two vector modalities of different dtypes and a sequence one."""
    rng = np.random.default_rng(seed)
    features = {
        "audio": (1 + 2 * rng.standard_normal((n, 3, 2))).astype(np.float32),  # [N, T, D]
        "image": (5 + 3 * rng.standard_normal((n, 5))).astype(np.float32),
        "text": (-2 + 0.5 * rng.standard_normal((n, 4))).astype(np.float64),
    }
    labels = np.arange(n) % 3
    present = {"audio": np.ones(n, bool), "image": np.arange(n) % 5 != 1, "text": np.arange(n) % 7 != 3}
    return features, labels, present


def split_file_values(n: int, encoding: str):
    codes = np.arange(n) % 5 % 3  # 0, 1, 2, 0, 1, 0, ...: every split, every class
    return np.array(["train", "val", "test"])[codes] if encoding == "names" else codes.astype(np.int8)


def write(folder: Path, layout="npy", split=None, missing="nan", n=N, **changes) -> tuple[dict, np.ndarray, dict]:
    features, labels, present = source(n)
    if missing == "mask":  # rows a mask marks absent may hold anything, Inf included
        for m, p in present.items():
            features[m] = features[m].copy()
            features[m][~p] = np.inf
    features.update(changes)
    write_features(folder, features, labels, layout, split_file_values(n, split) if split else None, present, missing)
    return features, labels, present


def expected_inputs(dm: FeaturesDataModule, features, present, rows):
    """What a batch must hold: the source rows standardised with train statistics (float64 here), absent rows zero."""
    train = dm.split_indices["train"]
    out = {}
    for m, x in features.items():
        fit_rows = train[present[m][train]]
        mean = x[fit_rows].astype(np.float64).mean(0)
        std = x[fit_rows].astype(np.float64).std(0)
        std = np.where(std > 1e-8, std, 1)
        with np.errstate(invalid="ignore"):
            want = (x[rows] - mean) / std
        want[~present[m][rows]] = 0
        out[m] = want
    return out


# ---- every layout serves the source rows ------------------------------------------------------


@pytest.mark.parametrize("missing", ["nan", "mask"])
@pytest.mark.parametrize("split", [None, "names", "codes"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_batches_are_the_source_rows_standardised_with_train_statistics(layout, split, missing, tmp_path):
    features, labels, present = write(tmp_path, layout, split, missing)
    dm = FeaturesDataModule(path=str(tmp_path), split={"train": 0.5, "val": 0.25, "test": 0.25}, batch_size=16, seed=3)
    assert dm.modalities == {"audio": (3, 2), "image": (5,), "text": (4,)}  # sorted by name, shapes from the files
    assert dm.num_classes == 3
    dm.setup()
    if split:
        codes = split_file_values(N, "codes")
        for code, name in enumerate(["train", "val", "test"]):
            np.testing.assert_array_equal(dm.split_indices[name], np.flatnonzero(codes == code))
    else:
        for name, rows in stratified_split(labels, dm.split_fractions, 0).items():
            np.testing.assert_array_equal(dm.split_indices[name], rows)
    for name, loader in [("train", dm.train_dataloader()), ("val", dm.val_dataloader()), ("test", dm.test_dataloader())]:
        seen = []
        for batch in loader:
            assert set(batch) == {"inputs", "present", "target", "index"}
            assert list(batch["inputs"]) == list(batch["present"]) == ["audio", "image", "text"]
            rows = batch["index"].numpy()
            np.testing.assert_array_equal(batch["target"].numpy(), labels[rows])
            assert batch["target"].dtype == batch["index"].dtype == torch.long
            want = expected_inputs(dm, features, present, rows)
            for m in features:
                assert batch["inputs"][m].dtype == torch.float32 and batch["present"][m].dtype == torch.bool
                np.testing.assert_array_equal(batch["present"][m].numpy(), present[m][rows])
                np.testing.assert_allclose(batch["inputs"][m].numpy(), want[m], rtol=1e-5, atol=1e-5)
            seen.append(rows)
        np.testing.assert_array_equal(np.sort(np.concatenate(seen)), dm.split_indices[name])


@pytest.mark.parametrize("layout", ["npy", "one-npz", "one-safetensors"])
def test_arrays_are_read_from_disk_not_held(layout, tmp_path):
    rng = np.random.default_rng(0)
    features = {"image": rng.standard_normal((2000, 256), dtype=np.float32), "text": rng.standard_normal((2000, 16, 32), dtype=np.float32)}
    write_features(tmp_path, features, np.arange(2000) % 4, layout)
    dm = FeaturesDataModule(path=str(tmp_path))
    dm.setup()
    dataset = dm.datasets["train"]
    assert all(isinstance(a, DiskArray) for a in dataset.arrays.values())
    # what the data module holds (and a DataLoader worker receives): where the arrays are, labels,
    # masks and statistics, not the 6 MB of features
    assert len(pickle.dumps(dm.datasets)) < 0.05 * sum(x.nbytes for x in features.values())


def test_compressed_npz_is_read_into_memory_with_the_same_batches(tmp_path):
    features, labels, _ = source()
    np.savez_compressed(tmp_path / "features.npz", **features)
    np.save(tmp_path / "labels.npy", labels)
    dm = FeaturesDataModule(path=str(tmp_path), batch_size=N)
    dm.setup()
    assert all(isinstance(a, InMemoryArray) for a in dm.datasets["train"].arrays.values())
    batch = next(iter(dm.val_dataloader()))
    want = expected_inputs(dm, features, {m: np.ones(N, bool) for m in features}, batch["index"].numpy())
    for m in features:
        np.testing.assert_allclose(batch["inputs"][m].numpy(), want[m], rtol=1e-5, atol=1e-5)


def test_bfloat16_fortran_order_and_integer_arrays(tmp_path):
    from safetensors.torch import save_file

    rng = np.random.default_rng(1)
    wide = torch.randn(N, 6, dtype=torch.bfloat16)
    save_file({"x": wide}, tmp_path / "bf.safetensors")
    fortran = np.asfortranarray(rng.standard_normal((N, 4)).astype(np.float32))
    np.save(tmp_path / "fortran.npy", fortran)
    counts = rng.integers(0, 50, (N, 3)).astype(np.int16)
    np.save(tmp_path / "counts.npy", counts)
    np.save(tmp_path / "labels.npy", np.arange(N) % 2)
    dm = FeaturesDataModule(path=str(tmp_path), standardize=False, batch_size=N)
    dm.setup()
    batch = next(iter(dm.test_dataloader()))
    rows = batch["index"].numpy()
    torch.testing.assert_close(batch["inputs"]["bf"], wide[torch.as_tensor(rows)].float(), rtol=0, atol=0)
    np.testing.assert_array_equal(batch["inputs"]["fortran"].numpy(), fortran[rows])
    np.testing.assert_array_equal(batch["inputs"]["counts"].numpy(), counts[rows].astype(np.float32))


def test_configured_modality_order_is_the_batch_order(tmp_path):
    write(tmp_path, "one-npz")
    dm = FeaturesDataModule(path=str(tmp_path), modalities=["text", "audio", "image"])
    assert list(dm.modalities) == ["text", "audio", "image"]
    dm.setup()
    assert list(next(iter(dm.train_dataloader()))["inputs"]) == ["text", "audio", "image"]


def test_statistics_do_not_depend_on_the_chunk_size(tmp_path, monkeypatch):
    write(tmp_path, "npy")
    whole = FeaturesDataModule(path=str(tmp_path))
    whole.setup()
    chunks = feature_checks.row_chunks
    monkeypatch.setattr(feature_checks, "row_chunks", lambda n, row_bytes: chunks(n, row_bytes, chunk_bytes=7 * row_bytes))
    chunked = FeaturesDataModule(path=str(tmp_path))
    chunked.setup()
    for m in whole.modalities:
        np.testing.assert_array_equal(whole.present[m], chunked.present[m])
        for a, b in zip(whole.standardization[m], chunked.standardization[m]):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


def test_a_class_without_rows_warns(tmp_path):
    write(tmp_path, "npy")
    np.save(tmp_path / "labels.npy", np.where(np.arange(N) % 3 == 1, 3, np.arange(N) % 3))  # classes 0, 2, 3
    with pytest.warns(UserWarning, match=r"class\(es\) 1 have no rows \(num_classes=4\)"):
        dm = FeaturesDataModule(path=str(tmp_path))
    assert dm.num_classes == 4


def test_the_fingerprint_keys_the_teacher_cache_on_the_files(tmp_path, compose_fit):
    from gramkd.identity import run_key
    from gramkd.teacher import teacher_run_config

    write(tmp_path / "data", "npy")
    overrides = ["experiment=features/kd_gram", f"data.path={tmp_path / 'data'}", *QUIET]
    key = run_key(teacher_run_config(compose_fit(overrides)))
    assert run_key(teacher_run_config(compose_fit(overrides))) == key
    np.save(tmp_path / "data" / "image.npy", source(seed=1)[0]["image"])  # new rows under the same path
    assert run_key(teacher_run_config(compose_fit(overrides))) != key
    assert files_fingerprint(None) == files_fingerprint(tmp_path / "missing") == "none"


def test_the_fingerprint_resolver_is_registered_by_a_call_not_by_an_import(tmp_path):
    """Importing gramkd.config registers nothing; register_resolvers() makes `${gramkd.fingerprint:…}` the files' fingerprint."""
    write(tmp_path / "data", "npy")
    script = f"""
from omegaconf import OmegaConf
import gramkd.config
print(OmegaConf.has_resolver("gramkd.fingerprint"))
gramkd.config.register_resolvers()
print(OmegaConf.create({{"path": {str(tmp_path / "data")!r}, "fingerprint": "${{gramkd.fingerprint:${{.path}}}}"}}).fingerprint)
"""
    result = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", files_fingerprint(tmp_path / "data")]


def test_a_checkpoint_of_other_files_warns(tmp_path):
    write(tmp_path, "npy")
    FeaturesDataModule(path=str(tmp_path), fingerprint=files_fingerprint(tmp_path))  # the same files: silent
    with pytest.warns(UserWarning, match=f"the files in {tmp_path} changed since this configuration was saved"):
        FeaturesDataModule(path=str(tmp_path), fingerprint="0123456789abcdef")


# ---- distillation end to end ----------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_distils_in_every_layout(layout, tmp_path, compose_fit):
    from gramkd.train import train_and_test

    write(tmp_path / "data", layout, split="names", n=120)
    cfg = compose_fit(
        [
            "experiment=features/kd_gram",
            f"data.path={tmp_path / 'data'}",
            "trainer.max_epochs=1",
            "compare_with=[]",
            "teacher.overrides=['trainer.max_epochs=1']",
            "data.batch_size=32",
            *QUIET,
        ]
    )
    metrics, module, _ = train_and_test(cfg)
    assert module.net.modality_names == ["audio", "image", "text"]
    assert {"test/acc", "val/agreement", "val/gram_mse"} <= set(metrics)
    assert np.isfinite([metrics["train/loss"], metrics["test/loss"]]).all()
    n_test = np.sum(split_file_values(120, "codes") == 2)
    assert metrics["test/acc"] * n_test == pytest.approx(round(metrics["test/acc"] * n_test), abs=1e-4)  # on split.npy's rows


@pytest.mark.slow
def test_gramkd_fit_and_test_on_a_features_folder(tmp_path):
    data = tmp_path / "data"
    write(data, "one-npz", split="names", missing="nan", n=150)
    fit = run_gramkd(
        [
            "fit",
            "experiment=features/kd_gram",
            f"data.path={data}",
            "trainer.max_epochs=1",
            "compare_with=[]",
            "teacher.overrides=['trainer.max_epochs=2']",
            *QUIET,
        ],
        tmp_path,
    )
    assert fit.returncode == 0, fit.stderr[-3000:]
    run = only_run_dir(tmp_path / "logs", "features/kd_gram")
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["test/acc"] <= 1 and "val/agreement" in metrics
    [teacher] = [p for p in (tmp_path / "logs" / "cache").glob("teacher_features_teacher-*") if p.is_dir()]
    teacher_checkpoint = torch.load(teacher / "net.pt", weights_only=True)
    specs = teacher_checkpoint["gramkd"]["net"]["modalities"]
    assert {m: (spec["kind"], spec["shape"]) for m, spec in specs.items()} == {
        "audio": ("sequence", [3, 2]),
        "image": ("vector", [5]),
        "text": ("vector", [4]),
    }
    assert teacher_checkpoint["gramkd"]["data"]["fingerprint"] == files_fingerprint(data)

    [best] = (run / "checkpoints").glob("epoch*.ckpt")
    test = run_gramkd(["test", f"ckpt_path={best}", "trainer.enable_progress_bar=false"], tmp_path)
    assert test.returncode == 0, test.stderr[-3000:]
    assert "changed since" not in test.stderr
    tested = json.loads((only_run_dir(tmp_path / "logs", "test") / "metrics.json").read_text())
    assert tested["test/acc"] == metrics["test/acc"]


# ---- bad input: one line, exit 2, before training, nothing touched ----------------------------


def corrupt_truncated(folder: Path) -> None:
    data = (folder / "image.npy").read_bytes()
    (folder / "image.npy").write_bytes(data[: len(data) - 7])


def make_bad(case: str, folder: Path) -> tuple[list[str], str]:
    """Write a data set with one fault; (extra overrides, the exact message after 'gramkd: error: ')."""
    features, labels, present = source()
    d = folder
    if case == "rows differ":
        write(d)
        np.save(d / "image.npy", features["image"][:-1])
        return (
            [],
            f"row counts differ: {d}/labels.npy has 90 rows but modality 'image' ({d}/image.npy) has 89; every modality needs one row per label, in the same order",
        )
    if case == "labels not integers":
        write(d)
        np.save(d / "labels.npy", labels.astype(np.float32))
        return [], f"{d}/labels.npy holds float32 values; labels must be integers: save labels.astype(numpy.int64)"
    if case == "negative label":
        write(d)
        np.save(d / "labels.npy", np.where(np.arange(N) == 17, -1, labels))
        return [], f"{d}/labels.npy row 17 is -1; labels must be integers from 0 (classes 0..C-1)"
    if case == "label out of range":
        write(d)
        return [
            "data.num_classes=2"
        ], f"{d}/labels.npy row 2 is 2, but data.num_classes=2: labels must be in 0..1; fix the label or raise data.num_classes"
    if case == "partial NaN":
        image = features["image"].copy()
        image[33, 2] = np.nan
        write(d, image=image)
        return (
            [],
            f"modality 'image' ({d}/image.npy) row 33 is partly NaN; a row is either complete or all NaN (the modality is absent): fill in the values or set the whole row to NaN",
        )
    if case == "Inf":
        text = features["text"].copy()
        text[40, 0] = -np.inf
        write(d, "one-npz", text=text)
        return (
            [],
            f"modality 'text' ({d}/features.npz (key 'text')) row 40 holds Inf; replace it with finite values, or mark the row absent (all NaN, or False in text.present.npy)",
        )
    if case == "NaN where the mask says present":
        write(d, "safetensors", missing="mask")
        audio = features["audio"].copy()
        audio[5, 1, 1] = np.nan
        make_features.write_features(d, {"audio": audio}, labels, "safetensors")
        return (
            [],
            f"modality 'audio' ({d}/audio.safetensors) row 5 holds NaN, but audio.present.npy marks it present; replace the values, or set row 5 of the mask to False",
        )
    if case == "configured modality missing":
        write(d)
        return (
            ["data.modalities=[image,video,text,audio]"],
            f"modality 'video' is in data.modalities but not in {d} (it has: audio, image, text); add video.npy there or remove 'video' from data.modalities",
        )
    if case == "modality not configured":
        write(d)
        return (
            ["data.modalities=[image,text]"],
            f"{d}/audio.npy holds modality 'audio', which data.modalities does not list; add 'audio' to data.modalities or move the file out of {d}",
        )
    if case == "corrupt file":
        write(d)
        corrupt_truncated(d)
        return (
            [],
            f"cannot read {d}/image.npy: it is cut short (1793 bytes of data where its header promises 1800); write it again with numpy.save",
        )
    if case == "bad split value":
        write(d, split="names")
        split = split_file_values(N, "names")
        split[12] = "trian"
        np.save(d / "split.npy", split)
        return [], f"{d}/split.npy row 12 is 'trian'; each row must be 'train', 'val' or 'test' (or 0, 1, 2)"
    if case == "no data.path":
        write(d)
        return (
            ["data.path=null"],
            "data.path is not set: pass data.path=DIR, a folder with one array file per modality and labels.npy (see 'Your own data' in the README)",
        )
    raise KeyError(case)


BAD_CASES = [
    "rows differ",
    "labels not integers",
    "negative label",
    "label out of range",
    "partial NaN",
    "Inf",
    "NaN where the mask says present",
    "configured modality missing",
    "modality not configured",
    "corrupt file",
    "bad split value",
    "no data.path",
]
# test_bad_input_message checks every case's message in process. How `gramkd fit` handles a data
# error (exit 2, that one line, nothing written or trained) does not depend on the case, so the
# real command runs one case of each source: the arrays' content, the config against the folder,
# a file that cannot be read.
CLI_CASES = ["rows differ", "configured modality missing", "corrupt file"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_message(case, tmp_path):
    extra, message = make_bad(case, tmp_path / "data")
    settings = OmegaConf.to_container(OmegaConf.from_dotlist(extra)).get("data", {})
    settings.setdefault("path", str(tmp_path / "data"))
    with pytest.raises(GramkdError) as raised:
        FeaturesDataModule(**settings).setup()
    assert str(raised.value) == message


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file()}


def run_bad_case(case: str, cwd: Path):
    data = cwd / "data"
    extra, message = make_bad(case, data)
    # things a bad input must never touch: an earlier run and a cached teacher
    (cwd / "logs" / "features" / "teacher" / "runs" / "earlier").mkdir(parents=True)
    (cwd / "logs" / "features" / "teacher" / "runs" / "earlier" / "metrics.json").write_text('{"test/acc": 0.9}')
    (cwd / "logs" / "cache" / "teacher_features_teacher-0123456789abcdef").mkdir(parents=True)
    (cwd / "logs" / "cache" / "teacher_features_teacher-0123456789abcdef" / "net.pt").write_bytes(b"weights")
    before = snapshot(cwd)
    result = run_gramkd(["fit", "experiment=features/teacher", f"data.path={data}", *extra, *QUIET], cwd)
    return result, message, before


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory):
    """The bad-input runs of `gramkd fit`, two at a time."""
    folders = {case: tmp_path_factory.mktemp("bad") for case in CLI_CASES}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {case: pool.submit(run_bad_case, case, folders[case]) for case in CLI_CASES}
        return {case: (folders[case], *future.result()) for case, future in futures.items()}


@pytest.mark.slow
@pytest.mark.parametrize("case", CLI_CASES)
def test_bad_input_stops_gramkd_fit_in_one_line(case, bad_runs):
    cwd, result, message, before = bad_runs[case]
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr == f"gramkd: error: {message}\n"
    assert result.stdout == ""
    after = snapshot(cwd)
    assert {path: after.get(path) for path in before} == before  # every file that existed is byte- and mtime-identical
    assert not [p for p in after if p.endswith((".ckpt", ".pt", "metrics.json")) and p not in before]  # nothing trained


# ---- more bad inputs, checked where they are raised -------------------------------------------


def refused(folder: Path, **kwargs) -> str:
    with pytest.raises(GramkdError) as raised:
        FeaturesDataModule(path=str(folder), **kwargs).setup()
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_missing_folder_labels_or_arrays(tmp_path):
    assert refused(tmp_path / "nope") == f"data.path {tmp_path}/nope does not exist: pass the folder that holds the feature files"
    (tmp_path / "file").write_text("x")
    assert refused(tmp_path / "file") == f"data.path {tmp_path}/file is not a folder: pass the folder that holds the feature files"
    assert refused(tmp_path) == f"{tmp_path} has no labels.npy: save the class of each row there (numpy.save, integers from 0, one per row)"
    np.save(tmp_path / "labels.npy", np.zeros(3, int))
    assert refused(tmp_path) == f"{tmp_path} holds no modality arrays: save one array per modality as <modality>.npy, .npz or .safetensors"


def test_corrupt_npz_and_safetensors(tmp_path):
    write(tmp_path, "one-npz")
    (tmp_path / "features.npz").write_bytes(b"PK\x03\x04 not really a zip")
    assert refused(tmp_path) == f"cannot read {tmp_path}/features.npz: File is not a zip file; write it again with numpy.savez"
    (tmp_path / "features.npz").unlink()
    write(tmp_path, "safetensors")
    data = (tmp_path / "image.safetensors").read_bytes()
    (tmp_path / "image.safetensors").write_bytes(data[:-8])
    assert refused(tmp_path).startswith(f"cannot read {tmp_path}/image.safetensors: Error while deserializing header: ")
    assert refused(tmp_path).endswith("; write it again with safetensors.numpy.save_file")


def test_a_damaged_npz(tmp_path):
    write(tmp_path, "one-npz")
    archive = (tmp_path / "features.npz").read_bytes()
    (tmp_path / "features.npz").write_bytes(archive[:200] + archive[260:])  # a hole in the first member's data
    assert refused(tmp_path).startswith(f"cannot read {tmp_path}/features.npz")


def test_a_file_that_is_not_npy(tmp_path):
    write(tmp_path)
    (tmp_path / "image.npy").write_bytes(b"image,0.1,0.2\n")
    message = refused(tmp_path)  # the middle is numpy's own reason
    assert message.startswith(f"cannot read {tmp_path}/image.npy: ") and message.endswith("; write it again with numpy.save")


@pytest.mark.parametrize(
    "name, array, message",
    [
        (
            "image.npy",
            np.zeros(N, np.float32),
            "{d}/image.npy has shape (90,); a modality needs [N, D] (one vector per row) or [N, T, D] (a sequence per row)",
        ),
        (
            "image.npy",
            np.zeros((N, 0), np.float32),
            "{d}/image.npy has shape (90, 0), which holds no values; every row needs at least one feature",
        ),
        (
            "image.npy",
            np.zeros((N, 2), complex),
            "{d}/image.npy holds complex128 values; modality arrays must be numbers (float16/32/64, bfloat16 or integers)",
        ),
        ("labels.npy", np.zeros((N, 1), int), "{d}/labels.npy has shape (90, 1); save labels as one value per row, shape [N]"),
        (
            "image.present.npy",
            np.zeros(N, np.float32),
            "{d}/image.present.npy holds float32 values; a present mask must be bool (True = the modality is there) or 0/1",
        ),
        (
            "image.present.npy",
            np.ones(N - 1, bool),
            "row counts differ: {d}/image.present.npy has 89 rows but labels.npy has 90; save one flag per row",
        ),
        (
            "video.present.npy",
            np.ones(N, bool),
            "{d}/video.present.npy is a present mask for modality 'video', which {d} does not have (it has: audio, image, text)",
        ),
        ("split.npy", np.full(N, 3), "{d}/split.npy row 0 is 3; each row must be 'train', 'val' or 'test' (or 0, 1, 2)"),
        ("split.npy", np.zeros(N, int), "{d}/split.npy has no 'val' rows; train, val and test each need at least one"),
        ("split.npy", np.zeros(N - 1, int), "row counts differ: {d}/split.npy has 89 rows but labels.npy has 90; save one split per row"),
        ("split.npy", np.zeros(N, np.float32), "{d}/split.npy holds float32 values; save 'train'/'val'/'test' or 0/1/2 per row"),
        (
            "split.npy",
            np.array(["train"] * N, dtype=object),
            "{d}/split.npy holds Python objects; save the split as a plain numpy array (strings or integers)",
        ),
        ("image.npz", np.zeros((N, 2), np.float32), "modality 'image' is given twice: by {d}/image.npy and by {d}/image.npz; keep one"),
        (
            "labels.safetensors",
            np.zeros((N, 2), np.float32),
            "{d}/labels.safetensors would be a modality named 'labels', a name gramkd reserves: put labels in labels.npy, the split in split.npy and masks in <modality>.present.npy, or rename the modality",
        ),
    ],
)
def test_more_bad_files(name, array, message, tmp_path):
    write(tmp_path)
    if name.endswith(".npz"):
        np.savez(tmp_path / name, array)
    elif name.endswith(".safetensors"):
        from safetensors.numpy import save_file

        save_file({"x": array}, tmp_path / name)
    else:
        np.save(tmp_path / name, array, allow_pickle=True)
    assert refused(tmp_path) == message.format(d=tmp_path)


def test_a_modality_absent_from_every_training_row(tmp_path):
    features, labels, _ = source()
    write_features(tmp_path, features, labels, present={"text": np.zeros(N, bool)}, missing="mask")
    assert refused(tmp_path) == "modality 'text' is absent from every training row: nothing to learn it from"


def test_the_config_group_composes(compose_fit, tmp_path):
    write(tmp_path / "data")
    cfg = compose_fit(["data=features", f"data.path={tmp_path / 'data'}", *QUIET])
    dm = instantiate(cfg.data)
    assert isinstance(dm, FeaturesDataModule) and dm.batch_size == cfg.data.batch_size
    assert OmegaConf.to_container(cfg.data, resolve=True)["fingerprint"] == files_fingerprint(tmp_path / "data")
