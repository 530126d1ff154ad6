"""Hypothesis tests and proportion intervals of the report, each variant named (docs/statistics.md).

- ``wilcoxon_signed_rank``: two-sided Wilcoxon signed-rank test, Pratt's zero method, *exact*
  conditional null distribution (all 2^m sign flips of the non-zero differences with their observed
  mid-ranks, computed by dynamic programming over the rank sum, so ties and zeros stay exact) up to
  ``EXACT_MAX_N`` differences; above it the normal approximation with tie/zero-corrected variance.
  scipy's ``method='exact'`` is exact only without ties and zeros, and its exact permutation
  (``PermutationMethod(n_resamples=inf)``) enumerates 2^n flips: infeasible beyond ~20 pooled cases.
  Tests cross-check ours against scipy called with the same options.
- ``mcnemar_exact``: exact (binomial) McNemar test on the discordant pairs (statsmodels).
- ``holm_by_family``: Holm step-down adjustment within each named family (statsmodels).
- ``wilson_ci``: Wilson score interval, no continuity correction.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054  # standard normal 97.5 % quantile
EXACT_MAX_N = 400  # exact rank-sum DP up to here: O(n^3) integer states, well under a second at 400


@dataclass(frozen=True)
class TestResult:
    """A p-value with the variant that produced it (``method`` goes into captions and CSVs)."""

    statistic: float
    p_value: float
    method: str


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; sd NaN for one value, both NaN for none)."""
    arr = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else math.nan


def pratt_ranks(diffs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pratt (1959): rank |d| *including* the zeros (mid-ranks for ties), then drop the zeros' ranks.

    Returns (ranks of the non-zero differences, their signs)."""
    from scipy.stats import rankdata

    diffs = np.asarray(diffs, dtype=float)
    ranks = rankdata(np.abs(diffs))
    keep = diffs != 0
    return ranks[keep], np.sign(diffs[keep])


def _signed_rank_null(doubled_ranks: np.ndarray) -> np.ndarray:
    """P(T = t) for t = 0..sum, T = sum of the (doubled, integer) ranks that get a + sign, each
    sign independently ±1 with probability 1/2 (the exact permutation null)."""
    probs = np.zeros(int(doubled_ranks.sum()) + 1)
    probs[0] = 1.0
    top = 0
    for rank in doubled_ranks.astype(int):
        shifted = np.zeros_like(probs)
        shifted[rank:top + rank + 1] = probs[:top + 1]
        probs = 0.5 * (probs + shifted)
        top += rank
    return probs


def wilcoxon_signed_rank(diffs, exact_max_n: int = EXACT_MAX_N) -> TestResult:
    """Two-sided Wilcoxon signed-rank test of ``diffs`` (b − a per case), Pratt's zero method.

    Statistic: T+ = sum of the Pratt ranks of the positive differences. Exact: p = min(1, 2·min(
    P(T+ ≤ t), P(T+ ≥ t))) under the sign-flip null (scipy's two-sided definition). NaN p when fewer
    than 2 differences or all of them are zero.
    """
    diffs = np.asarray(diffs, dtype=float)
    ranks, signs = pratt_ranks(diffs)
    if diffs.size < 2 or ranks.size == 0:
        return TestResult(math.nan, math.nan, "undefined")
    t_plus = float(ranks[signs > 0].sum())
    if diffs.size <= exact_max_n:
        doubled = np.rint(2.0 * ranks)  # mid-ranks are multiples of 1/2
        null = _signed_rank_null(doubled)
        t2 = int(round(2.0 * t_plus))
        p = min(1.0, 2.0 * min(null[:t2 + 1].sum(), null[t2:].sum()))
        return TestResult(t_plus, float(p), "exact")
    return TestResult(t_plus, _normal_p(ranks, t_plus), "normal approximation")


def _normal_p(ranks: np.ndarray, t_plus: float) -> float:
    """Normal approximation of T+ with the variance of the observed ranks (ties and Pratt zeros
    included, no continuity correction), two-sided."""
    from scipy.stats import norm

    z = (t_plus - ranks.sum() / 2.0) / math.sqrt((ranks ** 2).sum() / 4.0)
    return float(2.0 * norm.sf(abs(z)))


def mcnemar_exact(only_a: int, only_b: int) -> TestResult:
    """Exact two-sided McNemar test from the discordant counts (hit by A only, hit by B only):
    binomial test of ``only_b`` out of ``only_a + only_b`` against 1/2 (statsmodels). NaN without
    discordant pairs."""
    from statsmodels.stats.contingency_tables import mcnemar

    if only_a + only_b == 0:
        return TestResult(math.nan, math.nan, "undefined")
    result = mcnemar([[0, only_a], [only_b, 0]], exact=True)
    return TestResult(float(result.statistic), float(result.pvalue), "exact")


def holm(p_values) -> list[float]:
    """Holm step-down adjusted p-values over one family (the non-NaN entries; NaN stays NaN)."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, math.nan)
    valid = ~np.isnan(p)
    if valid.any():
        out[valid] = multipletests(p[valid], method="holm")[1]
    return out.tolist()


def holm_by_family(p_values, families) -> list[float]:
    """Holm adjustment run separately within each family (``families[i]`` names the family of
    ``p_values[i]``); a family's size is its number of defined p-values."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, math.nan)
    labels = np.asarray(families, dtype=object)
    for family in dict.fromkeys(families):
        members = np.flatnonzero(labels == family)
        out[members] = holm(p[members])
    return out.tolist()


def family_sizes(p_values, families) -> dict[str, int]:
    """Number of defined p-values per family, in first-seen order."""
    sizes: dict[str, int] = {}
    for p, family in zip(p_values, families):
        sizes[family] = sizes.get(family, 0) + (p is not None and not math.isnan(p))
    return sizes


def wilson_ci(k: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval (no continuity correction) of a proportion k/n, as fractions.

    ``k`` may be a mean count (average over seeds) and ``n`` an effective number of trials (a
    clustered design divides n by its design effect); NaN interval when n == 0.
    """
    if not n:
        return math.nan, math.nan
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # the interval always contains p; rounding alone can put 1.0 a hair outside it when k == n
    return min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half))
