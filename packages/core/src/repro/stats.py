"""Means and 95% confidence intervals over seeds (Student t, since seeds are few)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int
    std: float

    def __str__(self) -> str:
        return format_ci(self)


def t_quantile(q: float, dof: int) -> float:
    """Student-t quantile. scipy is imported here, not at module level: every training job imports
    this module (through the claims of its paper) and scipy.stats alone costs ~0.5 s per job."""
    from scipy import stats as st

    return float(st.t.ppf(q, dof))


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean and two-sided t-interval; with one value the interval is unbounded."""
    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, math.nan)
    mean = sum(xs) / n
    if n == 1:
        return Interval(mean, -math.inf, math.inf, 1, math.nan)
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, std)


def format_ci(ci: Interval, digits: int = 4) -> str:
    if ci.n == 0 or math.isnan(ci.mean):
        return "n/a"
    half = (ci.high - ci.low) / 2
    return f"{ci.mean:.{digits}g} ± {half:.2g}" if math.isfinite(half) else f"{ci.mean:.{digits}g}"
