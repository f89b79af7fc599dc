"""A callback that interrupts training like Ctrl-C when an epoch starts (the previous one is saved)."""

from lightning.pytorch.callbacks import Callback


class InterruptBeforeEpoch(Callback):
    def __init__(self, epoch: int = 1):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            raise KeyboardInterrupt
