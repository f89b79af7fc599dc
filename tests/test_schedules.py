import math

import pytest
import torch

from gramkd.errors import GramkdError
from gramkd.modules.schedules import warmup_cosine

BASE_LR = 0.5


def rates_over(steps: int, **schedule) -> list[float]:
    """The rate the optimiser uses at each of `steps` optimiser steps."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=BASE_LR)
    scheduler = warmup_cosine(optimizer=optimizer, **schedule)
    rates = []
    for _ in range(steps):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def expected(step: int, warmup: int, total: int, floor: float) -> float:
    if step < warmup:
        return BASE_LR * step / warmup
    angle = math.pi * min(step - warmup, total - warmup) / (total - warmup)
    return BASE_LR * (floor + (1 - floor) * (1 + math.cos(angle)) / 2)


@pytest.mark.parametrize("floor", [0.0, 0.1])
def test_warmup_cosine_matches_formula(floor):
    rates = rates_over(120, warmup_steps=10, total_steps=110, min_lr_ratio=floor)
    assert rates[0] == 0.0
    assert rates[5] == pytest.approx(BASE_LR / 2)
    assert rates[10] == pytest.approx(BASE_LR)  # warm-up ends at the full rate
    assert rates[60] == pytest.approx(BASE_LR * (1 + floor) / 2)  # half way through the cosine
    assert rates[110] == pytest.approx(BASE_LR * floor)
    assert rates[119] == pytest.approx(BASE_LR * floor)  # held after total_steps
    for step in (1, 3, 9, 11, 37, 84, 109):
        assert rates[step] == pytest.approx(expected(step, 10, 110, floor))


def test_no_warmup_starts_at_full_rate():
    rates = rates_over(3, warmup_steps=0, total_steps=4)
    assert rates == pytest.approx([BASE_LR, BASE_LR * (1 + math.cos(math.pi / 4)) / 2, BASE_LR / 2])


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ({"warmup_steps": 10, "total_steps": 10}, "warmup_steps=10 must be at least 0 and below total_steps=10"),
        ({"warmup_steps": 0, "total_steps": 10, "min_lr_ratio": 1.5}, "min_lr_ratio=1.5 must lie in"),
    ],
)
def test_bad_schedule_is_named(schedule, message):
    with pytest.raises(GramkdError, match=message):
        rates_over(1, **schedule)
