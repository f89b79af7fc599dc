"""Learning-rate schedules as factories for `module.scheduler` (Hydra `_partial_: true`, called with `optimizer=`).

Step-based schedules go with `module.scheduler_interval: step`. Steps per epoch are
ceil(train rows / batch size): 125 for 8000 rows in batches of 64.
"""

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from gramkd.errors import GramkdError


def warmup_cosine(optimizer: Optimizer, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0) -> LambdaLR:
    """Linear warm-up from 0 to the optimiser's rate over `warmup_steps`, then a cosine decay to
    `min_lr_ratio` times that rate at `total_steps`, held there after."""
    if not 0 <= warmup_steps < total_steps:
        raise GramkdError(f"module.scheduler: warmup_steps={warmup_steps} must be at least 0 and below total_steps={total_steps}")
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise GramkdError(f"module.scheduler: min_lr_ratio={min_lr_ratio} must lie in [0, 1]")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / warmup_steps
        progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)
