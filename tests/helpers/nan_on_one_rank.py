"""A 2-process DDP (gloo) distillation fit on CPU in which only rank 1's `unstable` term turns NaN.

Run as a script: `python nan_on_one_rank.py OUT_DIR`; Lightning's `ddp` relaunches it for rank 1.
Each rank that stops on the error writes the message to OUT_DIR/stopped_rank<r>.txt and exits 2;
rank 0 then waits for rank 1 and writes its exit code to OUT_DIR/exit_code_rank1.txt.
"""

import sys
from pathlib import Path

import lightning as L
import torch
from nan_term import NaNOnOneRank

from gramkd.data import SyntheticDataModule
from gramkd.distill import KDDistillation
from gramkd.errors import GramkdError
from gramkd.modules import DistillModule
from gramkd.nets import MultimodalNet

NAN_AFTER_STEPS = 2


def fit(out_dir: str) -> L.Trainer:
    torch.set_num_threads(1)
    dm = SyntheticDataModule(num_samples=128, batch_size=16, seed=0, split={"train": 0.5, "val": 0.25, "test": 0.25})
    torch.manual_seed(0)
    student = MultimodalNet(dm.modalities, dm.num_classes, width=8, depth=1, heads=2)
    teacher = MultimodalNet(dm.modalities, dm.num_classes, width=8, depth=1, heads=2)
    module = DistillModule(student, teacher, optimizer=torch.optim.SGD, teacher_cache="off")
    trainer = L.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp",
        max_epochs=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=out_dir,
        callbacks=[KDDistillation(), NaNOnOneRank(rank=1, steps=NAN_AFTER_STEPS)],
    )
    try:
        trainer.fit(module, datamodule=dm)
    except GramkdError as error:
        Path(out_dir, f"stopped_rank{trainer.global_rank}.txt").write_text(str(error))
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()  # else a rank may abort at exit (DESIGN.md)
        for rank, process in enumerate(getattr(trainer.strategy.launcher, "procs", []), start=1):
            Path(out_dir, f"exit_code_rank{rank}.txt").write_text(str(process.wait()))
        sys.exit(2)
    return trainer


if __name__ == "__main__":
    fit(sys.argv[1])
    print("finished without stopping", file=sys.stderr)
