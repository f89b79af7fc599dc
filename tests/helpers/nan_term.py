"""A distillation term that turns NaN after a number of training steps."""

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


class NaNOnOneRank(NaNAfterSteps):
    """Like NaNAfterSteps, but only on process `rank` of a distributed run: the others stay finite."""

    def __init__(self, rank: int = 1, steps: int = 3, **kwargs):
        super().__init__(steps, **kwargs)
        self.rank, self.global_rank = rank, 0

    def setup(self, trainer, pl_module, stage):
        super().setup(trainer, pl_module, stage)
        self.global_rank = trainer.global_rank

    def loss(self, step):
        value = super().loss(step)
        return value if self.global_rank == self.rank else value.nan_to_num(0.0)
