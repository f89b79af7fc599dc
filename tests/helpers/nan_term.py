"""A distillation term that turns NaN after a number of training steps."""

import torch

from gramkd.distill import DistillationTerm


class NaNAfterSteps(DistillationTerm):
    default_name = "unstable"

    def __init__(self, steps: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.steps, self.calls = steps, 0

    def loss(self, step):
        self.calls += 1
        value = step.student.logits.square().mean() * 0
        return value + (float("nan") if self.calls > self.steps else 0.0)
