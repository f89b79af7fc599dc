"""The teacher-output cache: the same losses as computing the teacher online, refused or
invalidated when reuse would be wrong; any dtype and any set of output fields kept bit-exact."""

import json

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from gramkd.data import SyntheticDataModule
from gramkd.distill import GramDistillation, KDDistillation, ModalitySpecificDistillation
from gramkd.distill.teacher_cache import TeacherOutputCache
from gramkd.errors import GramkdError
from gramkd.identity import net_key
from gramkd.modules import DistillModule
from gramkd.nets import MultimodalNet, MultimodalOutput

from conftest import FAST, run_gramkd

SPLIT = {"train": 0.5, "val": 0.25, "test": 0.25}


class RecordLosses(Callback):
    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(outputs["loss"].detach().clone())


def data(**kwargs):
    # 512 rows: 256 training rows, four full batches of 64 per epoch (every teacher pass sees
    # batches of one size, so cached and recomputed outputs agree to the bit)
    return SyntheticDataModule(num_samples=512, batch_size=64, seed=3, split=SPLIT, **kwargs)


def nets(dm):
    torch.manual_seed(0)
    teacher = MultimodalNet(dm.modalities, dm.num_classes, width=32, encoder_hidden=64, depth=2).eval()
    student = MultimodalNet(dm.modalities, dm.num_classes, width=8, depth=1, heads=2)
    return student, teacher


def distil(cache: str, tmp_path, dm=None, epochs=2, teacher=None, precision="32-true"):
    dm = dm or data()
    student, default_teacher = nets(dm)
    module = DistillModule(
        student, teacher or default_teacher, optimizer=torch.optim.Adam, teacher_cache=cache, teacher_cache_dir=str(tmp_path / "outputs")
    )
    record = RecordLosses()
    terms = [KDDistillation(), GramDistillation(weight=1.0), ModalitySpecificDistillation()]
    trainer = L.Trainer(
        max_epochs=epochs,
        callbacks=[record, *terms],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        deterministic=True,
        precision=precision,
    )
    trainer.fit(module, datamodule=dm)
    return record.losses, module


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
@pytest.mark.parametrize("cache", ["memory", "disk"])
def test_cached_teacher_gives_bit_identical_losses_to_the_online_teacher(cache, precision, tmp_path):
    online, _ = distil("off", tmp_path, precision=precision)
    cached, module = distil(cache, tmp_path, precision=precision)
    assert module.teacher_cache.layouts["full"]["logits"][0] == ("bfloat16" if precision == "bf16-mixed" else "float32")
    assert len(online) == len(cached) == 8
    assert all(torch.equal(a, b) for a, b in zip(online, cached)), [(float(a), float(b)) for a, b in zip(online, cached)]
    # epoch 0 fills the cache (full and single-modality passes), epoch 1 and validation read it
    assert module.teacher_cache.misses > 0 and module.teacher_cache.hits >= 2 * 4


def test_disk_cache_is_reused_by_a_later_run_and_keyed_by_the_teacher(tmp_path):
    _, first = distil("disk", tmp_path, epochs=1)
    _, second = distil("disk", tmp_path, epochs=1)
    assert second.teacher_cache.key == first.teacher_cache.key and second.teacher_cache.misses == 0
    assert second.teacher_cache.checks == 2  # one live batch per kind (full, single) confirms the stored layout
    dm = data()
    _, teacher = nets(dm)
    with torch.no_grad():
        teacher.head.bias.add_(1.0)  # another teacher
    _, third = distil("disk", tmp_path, dm=dm, epochs=1, teacher=teacher)
    assert third.teacher_cache.key != first.teacher_cache.key and third.teacher_cache.misses > 0
    assert len(list((tmp_path / "outputs").iterdir())) == 2


def test_the_key_changes_with_the_teacher_and_the_data_config():
    dm = data()
    _, teacher = nets(dm)
    base = net_key(teacher, {"num_samples": 512, "seed": 0})
    assert net_key(teacher, {"num_samples": 513, "seed": 0}) != base
    assert net_key(teacher, {"num_samples": 512, "seed": 7, "num_workers": 2}) == base  # the batch order only: one cache per sweep
    assert net_key(teacher, {"num_samples": 512, "seed": 0, "data_seed": 1}) != base
    deeper = MultimodalNet(dm.modalities, dm.num_classes, width=32, encoder_hidden=64, depth=2, layers=True)
    deeper.load_state_dict(teacher.state_dict())  # the same weights, returning one more field
    assert net_key(deeper, {"num_samples": 512, "seed": 0}) != base
    with torch.no_grad():
        teacher.head.weight[0, 0] += 1e-3
    assert net_key(teacher, {"num_samples": 512}) != base
    half = teacher.to(torch.bfloat16)  # numpy has no bfloat16: the key hashes the raw bits
    bf16_key = net_key(half, {"num_samples": 512})
    with torch.no_grad():
        half.head.weight[0, 0] = torch.nextafter(half.head.weight[0, 0], torch.tensor(torch.inf, dtype=torch.bfloat16))
    assert len({bf16_key, net_key(half, {"num_samples": 512}), base}) == 3


class AugmentedData(SyntheticDataModule):
    random_augmentation = True


def test_cache_is_refused_when_the_data_is_augmented(tmp_path):
    with pytest.raises(GramkdError, match="random augmentation.*module.teacher_cache=off"):
        distil("memory", tmp_path, dm=AugmentedData(num_samples=512, batch_size=64, split=SPLIT))
    losses, module = distil("off", tmp_path, dm=AugmentedData(num_samples=512, batch_size=64, split=SPLIT), epochs=1)
    assert module.teacher_cache is None and len(losses) == 4


# ---- the cache itself: any dtype, any set of fields, bit-exact -------------------------------------

ROWS, CLASSES, MODALITIES, WIDTH, LAYERS = 12, 3, 2, 4, 2
RAW_BITS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def bits(t: torch.Tensor) -> torch.Tensor:
    return t if t.dtype == torch.bool else t.view(RAW_BITS[t.dtype.itemsize])


def assert_same_bits(got: MultimodalOutput, want: MultimodalOutput) -> None:
    assert set(got.tensors()) == set(want.tensors())
    for name, value in want.tensors().items():
        assert getattr(got, name).dtype == value.dtype, name
        assert torch.equal(bits(getattr(got, name)), bits(value)), name


def teacher_table(dtype: torch.dtype, optional: bool, seed: int = 0) -> MultimodalOutput:
    """What a teacher would return for every row at once, with NaN, -0, inf and a subnormal in it."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(ROWS, *shape, generator=g).to(dtype)

    logits = rand(CLASSES)
    logits[0, 0], logits[1, 0], logits[2, 0] = float("nan"), -0.0, float("inf")
    logits[3, 0] = torch.finfo(dtype).smallest_normal / 4
    mask = torch.rand(ROWS, MODALITIES, generator=g) > 0.3
    extra = {"fused": rand(WIDTH), "layer_features": rand(LAYERS, MODALITIES, WIDTH), "prefusion_features": rand(MODALITIES, WIDTH)}
    extra = extra if optional else {}
    return MultimodalOutput(logits, rand(MODALITIES, WIDTH), mask, **extra)


def rows_of(table: MultimodalOutput, index: torch.Tensor) -> MultimodalOutput:
    return MultimodalOutput(**{name: value[index] for name, value in table.tensors().items()})


def fill(cache: TeacherOutputCache, table: MultimodalOutput, kind: str = "full") -> None:
    for index in torch.arange(ROWS).split(5):
        cache.get_or_compute(kind, index, lambda index=index: rows_of(table, index))


def never():
    raise AssertionError("the teacher ran although the rows were cached")


@pytest.mark.parametrize("optional", [True, False], ids=["all-fields", "required-only"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("where", ["memory", "disk"])
def test_outputs_of_any_dtype_and_fields_come_back_bit_exact(where, dtype, optional, tmp_path):
    # the bf16 / disk case is the crash `trainer.precision=bf16-mixed module.teacher_cache=disk` hit
    table = teacher_table(dtype, optional)
    cache = TeacherOutputCache(ROWS, "key", tmp_path if where == "disk" else None)
    fill(cache, table)
    index = torch.tensor([7, 0, 11, 3, 3, 1, 2])
    got = cache.get_or_compute("full", index, never)
    assert_same_bits(got, rows_of(table, index))
    assert (got.fused is None, got.layer_features is None, got.prefusion_features is None) == (not optional,) * 3
    assert (cache.misses, cache.hits) == (3, 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
def test_a_later_run_reads_the_rows_from_disk_bit_exact(dtype, tmp_path):
    table = teacher_table(dtype, optional=True)
    first = TeacherOutputCache(ROWS, "key", tmp_path)
    fill(first, table)
    first.flush()
    layout = json.loads((tmp_path / "key" / "full" / "layout.json").read_text())
    assert layout["logits"] == [str(dtype).removeprefix("torch."), [CLASSES]]
    assert layout["layer_features"] == [str(dtype).removeprefix("torch."), [LAYERS, MODALITIES, WIDTH]]

    later = TeacherOutputCache(ROWS, "key", tmp_path)
    live = torch.tensor([4, 5])  # one live batch confirms the stored layout...
    assert_same_bits(later.get_or_compute("full", live, lambda: rows_of(table, live)), rows_of(table, live))
    index = torch.tensor([0, 1, 2, 3, 9])  # ...then rows written by the first run are read back
    assert_same_bits(later.get_or_compute("full", index, never), rows_of(table, index))
    assert (later.checks, later.hits, later.misses) == (1, 1, 0)


def test_a_teacher_that_now_returns_other_fields_refills_the_disk_cache_instead_of_reading_stale_rows(tmp_path):
    old = teacher_table(torch.float32, optional=False)
    fill(TeacherOutputCache(ROWS, "key", tmp_path), old)
    new = teacher_table(torch.bfloat16, optional=True, seed=1)  # same key, but other fields and dtypes
    later = TeacherOutputCache(ROWS, "key", tmp_path)
    fill(later, new)
    assert (later.checks, later.misses, later.hits) == (1, 2, 0)  # the check found another layout: nothing was reused
    index = torch.arange(ROWS)
    assert_same_bits(later.get_or_compute("full", index, never), rows_of(new, index))
    assert sorted(p.name for p in (tmp_path / "key" / "full").iterdir()) == sorted(
        ["filled.npy", "layout.json", *(f"{name}.npy" for name in new.tensors())]
    )


def test_within_a_run_an_output_with_other_fields_replaces_the_cached_rows():
    cache = TeacherOutputCache(ROWS, "key")
    first, second = torch.arange(6), torch.arange(6, ROWS)
    cache.get_or_compute("full", first, lambda: rows_of(teacher_table(torch.float32, optional=True), first))
    fewer = teacher_table(torch.float32, optional=False, seed=2)
    cache.get_or_compute("full", second, lambda: rows_of(fewer, second))
    again = cache.get_or_compute("full", first, lambda: rows_of(fewer, first))
    assert (cache.misses, cache.hits) == (3, 0)  # the rows stored with the old fields were dropped
    assert_same_bits(again, rows_of(fewer, first))
    assert_same_bits(cache.get_or_compute("full", torch.arange(ROWS), never), fewer)


@pytest.mark.parametrize("damage", ["no layout file", "a field file cut short", "an unknown dtype"])
def test_a_disk_cache_that_cannot_be_trusted_is_recomputed(damage, tmp_path):
    table = teacher_table(torch.bfloat16, optional=True)
    fill(TeacherOutputCache(ROWS, "key", tmp_path), table)
    folder = tmp_path / "key" / "full"
    if damage == "no layout file":  # as an older gramkd wrote it
        (folder / "layout.json").unlink()
    elif damage == "a field file cut short":
        (folder / "fused.npy").write_bytes((folder / "fused.npy").read_bytes()[:100])
    else:
        layout = json.loads((folder / "layout.json").read_text())
        layout["logits"][0] = "load"
        (folder / "layout.json").write_text(json.dumps(layout))
    later = TeacherOutputCache(ROWS, "key", tmp_path)
    fill(later, table)
    assert (later.misses, later.checks, later.hits) == (3, 0, 0)
    assert_same_bits(later.get_or_compute("full", torch.arange(ROWS), never), table)
    assert np.load(folder / "filled.npy").all()


def test_bf16_mixed_fit_with_a_disk_teacher_cache_through_the_cli(tmp_path):
    args = [
        "fit",
        "experiment=synthetic/kd_gram",
        *FAST,
        "compare_with=[]",
        "teacher.overrides=['trainer.max_epochs=1']",
        "trainer.max_epochs=2",
        "trainer.precision=bf16-mixed",
        "module.teacher_cache=disk",
    ]
    result = run_gramkd(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    [folder] = (tmp_path / "logs" / "cache" / "teacher_outputs").iterdir()
    layout = json.loads((folder / "full" / "layout.json").read_text())
    assert layout["logits"][0] == layout["modality_features"][0] == "bfloat16" and layout["modality_mask"][0] == "bool"
    assert np.load(folder / "full" / "filled.npy").all()  # every row went through (train, val, test)
    logits = torch.from_numpy(np.load(folder / "full" / "logits.npy")).view(torch.bfloat16)
    assert torch.isfinite(logits).all() and logits.abs().sum() > 0


def test_two_jobs_filling_one_disk_cache_at_once_keep_each_others_rows(tmp_path):
    """Jobs of a parallel sweep share the disk cache: the second to allocate opens the first's files
    (under a file lock) instead of recreating them, so no row either has written is lost."""
    table = teacher_table(torch.float32, optional=False)
    first, second = TeacherOutputCache(ROWS, "key", tmp_path), TeacherOutputCache(ROWS, "key", tmp_path)
    early, late = torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5])

    def while_second_computes():  # second has looked for files and found none; first allocates now
        first.get_or_compute("full", early, lambda: rows_of(table, early))
        return rows_of(table, late)

    second.get_or_compute("full", late, while_second_computes)
    both = torch.cat([early, late])
    for cache in (first, second):
        assert_same_bits(cache.get_or_compute("full", both, never), rows_of(table, both))
    later = TeacherOutputCache(ROWS, "key", tmp_path)
    later.get_or_compute("full", torch.tensor([6]), lambda: rows_of(table, torch.tensor([6])))
    assert_same_bits(later.get_or_compute("full", both, never), rows_of(table, both))
