"""The Gram term's heatmap reaches the loggers that take pictures (here an offline W&B run)."""

import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger

from gramkd.data import SyntheticDataModule
from gramkd.distill import GramDistillation
from gramkd.modules import DistillModule
from gramkd.nets import MultimodalNet


def test_heatmap_is_logged_as_a_wandb_image_and_a_png(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    data = SyntheticDataModule(num_samples=200, batch_size=50)
    student = MultimodalNet(data.modalities, data.num_classes, width=8, depth=1, heads=2)
    teacher = MultimodalNet(data.modalities, data.num_classes, width=16, depth=1, heads=2)
    logger = WandbLogger(project="gramkd-tests", save_dir=str(tmp_path), offline=True)
    trainer = L.Trainer(
        max_epochs=1,
        logger=logger,
        callbacks=[GramDistillation()],
        default_root_dir=tmp_path,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(DistillModule(student, teacher, optimizer=torch.optim.Adam), datamodule=data)
    run_dir = logger.experiment.dir  # …/wandb/offline-run-*/files
    logger.experiment.finish()
    assert (tmp_path / "gram" / "gram_epoch000.png").is_file()
    images = list((tmp_path / "wandb").glob("offline-run-*/files/media/images/val/gram_heatmap_*.png"))
    assert len(images) == 1, list((tmp_path / "wandb").rglob("*"))
    assert images[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run_dir.startswith(str(tmp_path / "wandb"))
