"""What a fit trains, printed once as it starts: each network's class, parameters and mode.

Lightning's own summary lists the module's registered children (here mostly metric containers),
leaves out a DistillModule's teacher (kept out of the registered modules on purpose) and, since
Lightning 2.6, shows a FLOPs column that reads 0 unless the module sets `example_input_array`.
"""

import lightning as L
from lightning.pytorch.callbacks import RichModelSummary
from rich import get_console
from rich.table import Table
from torch import nn


class NetSummary(RichModelSummary):
    """The module's networks (its `summary_nets()`: the student and, when distilling, the frozen
    teacher) as one table; Lightning's table for a module without them."""

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        nets = pl_module.summary_nets() if hasattr(pl_module, "summary_nets") else None
        if nets is None:
            super().on_fit_start(trainer, pl_module)
        elif trainer.is_global_zero:
            get_console().print(net_table(nets))


def net_table(nets: dict[str, nn.Module]) -> Table:
    table = Table(header_style="bold magenta")
    for column in ("network", "class", "parameters", "trainable", "mode", "size (MB)"):
        table.add_column(column, justify="left" if column in ("network", "class", "mode") else "right")
    for name, net in nets.items():
        table.add_row(name, type(net).__name__, f"{parameters(net):,}", f"{parameters(net, True):,}", mode(net), f"{megabytes(net):.3f}")
    if {"student", "teacher"} <= nets.keys():
        table.caption = (
            f"the student has 1/{parameters(nets['teacher']) / max(parameters(nets['student']), 1):.1f} of the teacher's parameters"
        )
    return table


def parameters(net: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad or not trainable_only)


def mode(net: nn.Module) -> str:
    state = "train" if net.training else "eval"
    frozen = parameters(net) > 0 and parameters(net, trainable_only=True) == 0
    return f"{state}, frozen" if frozen else state


def megabytes(net: nn.Module) -> float:
    """The bytes its parameters and buffers hold, in MB (10⁶ bytes)."""
    return sum(t.numel() * t.element_size() for t in (*net.parameters(), *net.buffers())) / 1e6
