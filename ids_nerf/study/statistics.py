"""Small statistics for the studies: mean and spread, t confidence intervals, paired differences, verdicts.

Spreads are sample standard deviations (n - 1 in the denominator); intervals are two-sided Student-t
intervals of a mean. With fewer than two values there is no spread: ``nan``.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Dict, Hashable, List, Mapping, Sequence, Tuple

from scipy.stats import t as student_t


def mean_sd(values: Sequence[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation of ``values``; the deviation is ``nan`` below two values."""
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else float("nan"))


@dataclass(frozen=True)
class Interval:
    """A mean with its two-sided confidence interval [low, high] over ``n`` values."""

    mean: float
    low: float
    high: float
    n: int

    def verdict(self, higher_is_better: bool = True) -> str:
        """``win`` if the whole interval lies on the good side of 0, ``loss`` if on the bad side, else ``tie``
        (which includes an interval that cannot be computed, n < 2)."""
        if math.isnan(self.low) or math.isnan(self.high):
            return "tie"
        if self.low > 0:
            return "win" if higher_is_better else "loss"
        if self.high < 0:
            return "loss" if higher_is_better else "win"
        return "tie"

    def text(self, digits: int = 2) -> str:
        """``+0.41 [+0.12, +0.70]``; ``+0.41 (n=1)`` without an interval."""
        if math.isnan(self.low):
            return f"{self.mean:+.{digits}f} (n={self.n})"
        return f"{self.mean:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"


def t_interval(values: Sequence[float], level: float = 0.95) -> Interval:
    """The mean of ``values`` with its Student-t interval: mean ± t_{(1+level)/2, n-1} sd / sqrt(n)."""
    mean, sd = mean_sd(values)
    n = len(values)
    if n < 2:
        return Interval(mean, float("nan"), float("nan"), n)
    half = float(student_t.ppf((1 + level) / 2, n - 1)) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def paired_differences(
    treated: Mapping[Tuple[Hashable, Hashable], float], control: Mapping[Tuple[Hashable, Hashable], float]
) -> Dict[Hashable, List[float]]:
    """Per unit (first key element, e.g. the source), the differences treated - control over the pairs
    both have (second key element, e.g. the edit seed), in key order. Unpaired values are left out."""
    differences: Dict[Hashable, List[float]] = {}
    for key in sorted(set(treated) & set(control), key=str):
        value = treated[key] - control[key]
        if not math.isnan(value):
            differences.setdefault(key[0], []).append(value)
    return differences


def across_units(differences: Mapping[Hashable, Sequence[float]], level: float = 0.95) -> Interval:
    """The interval of the per-unit mean differences, each unit (source) counting once: the units are the
    independent replicates, the pairs within a unit share its source."""
    return t_interval([statistics.fmean(values) for values in differences.values() if values], level)
