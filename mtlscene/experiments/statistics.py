"""Mean ± std over seeds, and paired differences between two rows with a 95 % interval.

Every table of an experiment reports a row as mean ± std over its seeds. Whether two rows
differ is a different question: the seeds are shared (seed k of both rows sees the same
data order and initial draws), so the honest comparison is over the paired differences
``d_k = row_k - reference_k`` of the seeds both rows have.

The interval is the paired t interval, ``mean(d) ± t_{0.975, n-1} · sd(d) / √n``. A
percentile bootstrap was the alternative, but at the 3 seeds our experiments run it is too
coarse: the 27 resamples of 3 differences have 10 distinct means, and the 2.5 % and
97.5 % points of their distribution are the smallest and largest difference themselves
(each of those appears in 1 resample of 27 = 3.7 %). That interval covers the true mean
only when the three differences straddle it, which for a symmetric spread happens with
probability 1 - 2 · 0.5³ = 75 %, not 95 %. The t interval with n - 1 degrees of freedom
keeps its 95 % for normal differences at any n and is wide at n = 3 (t = 4.30), as it
should be.

``seeds_needed`` turns the measured spread into the number of seeds at which an interval of
the same mean difference and standard deviation would exclude 0: the smallest n with
``t_{0.975, n-1} · sd / √n < |mean|``. It is a planning figure, not a promise: the next
seeds have their own spread.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

CONFIDENCE = 0.95
# Above this many seeds "seeds needed" is reported as "more than" (a difference this small
# against its spread is no difference to plan for).
MAX_SEEDS = 1000


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1) of the finite values; NaN when none.

    NaN values (a metric a run could not compute) are left out; one value has std 0.
    """
    kept = [float(v) for v in values if not math.isnan(v)]
    if not kept:
        return math.nan, math.nan
    return statistics.fmean(kept), statistics.stdev(kept) if len(kept) > 1 else 0.0


def format_mean_std(
    values: Sequence[float], digits: int = 2, scale: float = 1.0, empty: str = "-"
) -> str:
    """``"mean ± std"`` of ``values`` times ``scale``, or ``empty`` when there are none."""
    mean, std = mean_std([v * scale for v in values])
    if math.isnan(mean):
        return empty
    return plus_minus(mean, std, digits)


def plus_minus(mean: float, std: float, digits: int = 2) -> str:
    """``"mean ± std"`` with ``digits`` decimals."""
    # A mean that rounds to zero prints as 0.00, not -0.00.
    return f"{mean + 0.0 if round(mean, digits) else 0.0:.{digits}f} ± {std:.{digits}f}"


def _central_mass(t: float, df: int) -> float:
    """P(|T| ≤ t) for Student's t with integer ``df`` (Abramowitz & Stegun 26.7.3/26.7.4)."""
    theta = math.atan(t / math.sqrt(df))
    cos2 = math.cos(theta) ** 2
    if df % 2 == 1:
        if df == 1:
            return 2.0 * theta / math.pi
        term = math.cos(theta)
        total = term
        for k in range(1, (df - 1) // 2):
            term *= cos2 * (2 * k) / (2 * k + 1)
            total += term
        return 2.0 / math.pi * (theta + math.sin(theta) * total)
    term = total = 1.0
    for k in range(1, df // 2):
        term *= cos2 * (2 * k - 1) / (2 * k)
        total += term
    return math.sin(theta) * total


@lru_cache(maxsize=4096)
def t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    """The two-sided critical value of Student's t: ``P(|T| ≤ q) = confidence``.

    ``t_quantile(2) = 4.303`` is ``t_{0.975, 2}``. Solved by bisection on the exact CDF.
    """
    if df < 1:
        raise ValueError(f"t_quantile: degrees of freedom must be >= 1, got {df}")
    low, high = 0.0, 1.0
    while _central_mass(high, df) < confidence:
        high *= 2.0
    for _ in range(100):
        middle = (low + high) / 2.0
        if _central_mass(middle, df) < confidence:
            low = middle
        else:
            high = middle
    return (low + high) / 2.0


def seeds_needed(mean: float, sd: float, confidence: float = CONFIDENCE) -> int | None:
    """The fewest seeds at which a t interval of this mean and spread excludes 0.

    None when no number up to `MAX_SEEDS` does (a zero or tiny mean difference).
    """
    if sd == 0.0:
        return 2 if mean != 0.0 else None
    if mean == 0.0 or not math.isfinite(mean) or not math.isfinite(sd):
        return None
    # t ≥ the normal quantile, so the normal answer is a lower bound to start from.
    normal = statistics.NormalDist().inv_cdf(0.5 + confidence / 2.0)
    start = max(2, math.ceil((normal * sd / abs(mean)) ** 2))
    for n in range(start, MAX_SEEDS + 1):
        if t_quantile(n - 1, confidence) * sd / math.sqrt(n) < abs(mean):
            return n
    return None


@dataclass(frozen=True)
class PairedDifference:
    """``row - reference`` over the seeds both have.

    Attributes:
        seeds: the seeds both rows have, sorted.
        mean: mean of the paired differences.
        sd: their sample standard deviation (NaN for one seed).
        low: lower end of the 95 % paired t interval (NaN for one seed).
        high: upper end of it.
    """

    seeds: tuple[int, ...]
    mean: float
    sd: float
    low: float
    high: float

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def has_interval(self) -> bool:
        return self.n >= 2

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies wholly on one side of 0 (the rows are distinguishable)."""
        return self.has_interval and (self.low > 0.0 or self.high < 0.0)

    @property
    def seeds_needed(self) -> int | None:
        """Seeds at which the measured mean and spread would exclude 0 (see module doc)."""
        return seeds_needed(self.mean, self.sd) if self.has_interval else None


def paired_difference(
    row: Mapping[int, float], reference: Mapping[int, float], confidence: float = CONFIDENCE
) -> PairedDifference | None:
    """The paired difference ``row - reference`` over their common seeds (seed -> value).

    Seeds where either value is NaN are left out; None when no seed is left.
    """
    seeds = tuple(
        sorted(
            seed
            for seed in set(row) & set(reference)
            if not (math.isnan(row[seed]) or math.isnan(reference[seed]))
        )
    )
    if not seeds:
        return None
    differences = [row[seed] - reference[seed] for seed in seeds]
    mean = statistics.fmean(differences)
    if len(differences) < 2:
        return PairedDifference(seeds, mean, math.nan, math.nan, math.nan)
    sd = statistics.stdev(differences)
    half = t_quantile(len(differences) - 1, confidence) * sd / math.sqrt(len(differences))
    return PairedDifference(seeds, mean, sd, mean - half, mean + half)


def format_difference(difference: PairedDifference, digits: int = 2) -> str:
    """``"+0.62 [-1.93, +3.17]"``: the mean difference and its 95 % interval."""
    mean = f"{difference.mean + 0.0:+.{digits}f}"
    if not difference.has_interval:
        return f"{mean} (1 seed)"
    return f"{mean} [{difference.low + 0.0:+.{digits}f}, {difference.high + 0.0:+.{digits}f}]"


def not_distinguishable(difference: PairedDifference) -> str:
    """``"not distinguishable at 3 seeds (the measured spread implies 9)"``."""
    if not difference.has_interval:
        return f"not distinguishable at {difference.n} seed (no interval from one seed)"
    needed = difference.seeds_needed
    if needed is None:
        implied = f"no number of seeds up to {MAX_SEEDS} separates a difference this small"
    else:
        implied = f"the measured spread implies {needed} seeds"
    return f"not distinguishable at {difference.n} seeds ({implied})"


def compare(difference: PairedDifference, lower_is_better: bool) -> str:
    """``"better at 3 seeds"``, ``"worse at 3 seeds"`` or the not-distinguishable sentence.

    Better and worse are the row's against its reference, by the metric's direction.
    """
    if not difference.excludes_zero:
        return not_distinguishable(difference)
    better = (difference.mean < 0.0) == lower_is_better
    return f"{'better' if better else 'worse'} at {difference.n} seeds"


__all__ = [
    "CONFIDENCE",
    "MAX_SEEDS",
    "PairedDifference",
    "compare",
    "format_difference",
    "format_mean_std",
    "mean_std",
    "not_distinguishable",
    "paired_difference",
    "seeds_needed",
    "t_quantile",
]
