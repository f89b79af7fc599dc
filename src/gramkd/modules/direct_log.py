"""Values sent to the loggers in one call, as Lightning would send values logged with `self.log`.

`self.log` costs ~0.3 ms per value (Lightning's `_ResultCollection` bookkeeping), which on a small
step is a measurable share of it. Values that need none of that bookkeeping (no reduction across
steps or ranks: the module has reduced them itself) go out here: to every logger at the step and
with the `epoch` Lightning gives them, and into `trainer.callback_metrics` (so that checkpoint
monitors, early stopping and the run's metrics.json see them) and, where asked, the progress bar.
"""

import lightning as L
import torch


def log_values(module: L.LightningModule, values: dict[str, torch.Tensor], prog_bar: tuple[str, ...] = ()) -> None:
    """Log `values` (scalar tensors) now; a module without a trainer logs nothing."""
    trainer = module._trainer
    if trainer is None or not values:
        return
    detached = {name: value.detach() for name, value in values.items()}
    floats = dict(zip(detached, torch.stack([value.float() for value in detached.values()]).tolist()))  # one device-to-host copy
    trainer.callback_metrics.update(detached)
    trainer.progress_bar_metrics.update({name: floats[name] for name in prog_bar if name in floats})
    trainer._logger_connector.log_metrics(floats)
