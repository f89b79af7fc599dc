"""The teacher-output cache: the same losses as computing the teacher online, refused or
invalidated when reuse would be wrong."""

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from gramkd.data import SyntheticDataModule
from gramkd.distill import GramDistillation, KDDistillation, ModalitySpecificDistillation
from gramkd.distill.teacher_cache import cache_key
from gramkd.errors import GramkdError
from gramkd.modules import DistillModule
from gramkd.nets import MultimodalNet


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


def distil(cache: str, tmp_path, dm=None, epochs=2, teacher=None):
    dm = dm or data()
    student, default_teacher = nets(dm)
    module = DistillModule(student, teacher or default_teacher, optimizer=torch.optim.Adam, teacher_cache=cache, teacher_cache_dir=str(tmp_path / "outputs"))
    record = RecordLosses()
    terms = [KDDistillation(), GramDistillation(weight=1.0), ModalitySpecificDistillation()]
    trainer = L.Trainer(
        max_epochs=epochs, callbacks=[record, *terms], logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path, deterministic=True,
    )
    trainer.fit(module, datamodule=dm)
    return record.losses, module


@pytest.mark.parametrize("cache", ["memory", "disk"])
def test_cached_teacher_gives_bit_identical_losses_to_the_online_teacher(cache, tmp_path):
    online, _ = distil("off", tmp_path)
    cached, module = distil(cache, tmp_path)
    assert len(online) == len(cached) == 8
    assert all(torch.equal(a, b) for a, b in zip(online, cached)), [(float(a), float(b)) for a, b in zip(online, cached)]
    # epoch 0 fills the cache (full and single-modality passes), epoch 1 and validation read it
    assert module.teacher_cache.misses > 0 and module.teacher_cache.hits >= 2 * 4


def test_disk_cache_is_reused_by_a_later_run_and_keyed_by_the_teacher(tmp_path):
    _, first = distil("disk", tmp_path, epochs=1)
    _, second = distil("disk", tmp_path, epochs=1)
    assert second.teacher_cache.key == first.teacher_cache.key and second.teacher_cache.misses == 0
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
    base = cache_key(teacher, {"num_samples": 512})
    assert cache_key(teacher, {"num_samples": 513}) != base
    with torch.no_grad():
        teacher.head.weight[0, 0] += 1e-3
    assert cache_key(teacher, {"num_samples": 512}) != base


class AugmentedData(SyntheticDataModule):
    random_augmentation = True


def test_cache_is_refused_when_the_data_is_augmented(tmp_path):
    with pytest.raises(GramkdError, match="random augmentation.*module.teacher_cache=off"):
        distil("memory", tmp_path, dm=AugmentedData(num_samples=512, batch_size=64, split=SPLIT))
    losses, module = distil("off", tmp_path, dm=AugmentedData(num_samples=512, batch_size=64, split=SPLIT), epochs=1)
    assert module.teacher_cache is None and len(losses) == 4
