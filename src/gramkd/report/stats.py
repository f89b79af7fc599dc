"""The statistics of a report, on plain numbers: means, sample deviations, paired differences with
their Student-t intervals, and the fraction of the teacher–scratch gap recovered."""

import math
import statistics
from dataclasses import dataclass


@dataclass
class PairedDifference:
    """mean of (ours − theirs) over `n` pairs, with its 95% paired-t interval (None for one pair)."""

    mean: float
    low: float | None
    high: float | None
    n: int


def mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def sample_std(values: list[float]) -> float | None:
    return statistics.stdev(values) if len(values) >= 2 else None


def t_quantile_975(df: int) -> float:
    """t_{0.975} of Student's t with `df` degrees of freedom (the half-width of a 95% interval, in standard errors)."""
    # imported here, not at the top: it takes seconds, and only `gramkd report` needs it
    from scipy import stats

    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, not {df}")
    return float(stats.t.ppf(0.975, df))


def paired_difference(ours: dict, theirs: dict) -> PairedDifference | None:
    """(ours − theirs) over the keys (seeds) both have; None when they share none."""
    keys = sorted(set(ours) & set(theirs), key=str)
    if not keys:
        return None
    differences = [ours[k] - theirs[k] for k in keys]
    centre = statistics.fmean(differences)
    if len(differences) < 2:
        return PairedDifference(centre, None, None, 1)
    half = t_quantile_975(len(differences) - 1) * statistics.stdev(differences) / math.sqrt(len(differences))
    return PairedDifference(centre, centre - half, centre + half, len(differences))


def gap_recovered(value: float | None, scratch: float | None, teacher: float | None) -> float | None:
    """(value − scratch) / (teacher − scratch); None without both ends or when they are equal."""
    if value is None or scratch is None or teacher is None or teacher == scratch:
        return None
    return (value - scratch) / (teacher - scratch)
