"""Statistics of the report: paired comparisons (bootstrap CI + Wilcoxon), Holm adjustment, Wilson
intervals for proportions and bootstrap ranking stability. Randomness comes from an explicit
``np.random.Generator``; scipy does the tests."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054  # standard normal 97.5 % quantile


@dataclass(frozen=True)
class PairedComparison:
    """``b`` minus ``a`` over the same cases (values in the unit of the inputs).

    Attributes:
        n: number of paired cases.
        mean_diff: mean of (b - a).
        ci: (low, high) percentile bootstrap 95% CI of the mean difference, NaN if n < 2.
        p_value: two-sided Wilcoxon signed-rank p, NaN when undefined (n < 2 or all diffs 0).
    """

    n: int
    mean_diff: float
    ci: tuple[float, float]
    p_value: float


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; sd NaN for one value, both NaN for none)."""
    arr = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else math.nan


def bootstrap_mean_ci(diffs: np.ndarray, rng: np.random.Generator, n_boot: int = 2000,
                      level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``diffs`` (shape (n,)), resampling cases (pairs)."""
    diffs = np.asarray(diffs, dtype=float)
    if diffs.size < 2:
        return math.nan, math.nan
    idx = rng.integers(0, diffs.size, size=(n_boot, diffs.size))
    means = diffs[idx].mean(axis=1)
    tail = (1.0 - level) / 2.0
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


def wilcoxon_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided paired Wilcoxon signed-rank p (scipy's default: exact for small n without ties,
    normal approximation otherwise; zero differences dropped); NaN when the test is undefined."""
    from scipy.stats import wilcoxon

    diffs = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if diffs.size < 2 or np.allclose(diffs, 0.0):
        return math.nan
    return float(wilcoxon(np.asarray(a, float), np.asarray(b, float)).pvalue)


def paired_comparison(a: dict[str, float], b: dict[str, float], rng: np.random.Generator,
                      n_boot: int = 2000) -> PairedComparison:
    """Compare per-case values ``b`` against ``a`` (dicts case_id -> value) on shared cases."""
    shared = sorted(k for k in set(a) & set(b)
                    if a[k] is not None and b[k] is not None and not (math.isnan(a[k]) or math.isnan(b[k])))
    if not shared:
        return PairedComparison(0, math.nan, (math.nan, math.nan), math.nan)
    va = np.array([a[k] for k in shared], dtype=float)
    vb = np.array([b[k] for k in shared], dtype=float)
    diffs = vb - va
    return PairedComparison(len(shared), float(diffs.mean()), bootstrap_mean_ci(diffs, rng, n_boot),
                            wilcoxon_p(va, vb))


def holm(p_values) -> list[float]:
    """Holm step-down adjusted p-values (family = the non-NaN entries; NaN stays NaN), capped at 1."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, math.nan)
    valid = np.flatnonzero(~np.isnan(p))
    order = valid[np.argsort(p[valid], kind="stable")]
    m, running = len(order), 0.0
    for i, index in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[index]))  # monotone: never below an earlier one
        out[index] = running
    return out.tolist()


def wilson_ci(k: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval (no continuity correction) of a proportion k/n, as fractions.

    ``k`` may be a mean count (average over seeds); NaN interval when n == 0.
    """
    if not n:
        return math.nan, math.nan
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # the interval always contains p; rounding alone can put 1.0 a hair outside it when k == n
    return min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half))


@dataclass(frozen=True)
class RankStability:
    """Ranking of methods by mean value (rank 1 = highest) and its bootstrap distribution over cases."""

    names: list[str]
    means: list[float]
    ranks: list[int]
    mean_boot_rank: list[float]
    p_first: list[float]
    rank_interval: list[tuple[int, int]]  # 2.5 % / 97.5 % quantiles of the bootstrap rank


def rank_stability(values: np.ndarray, names: list[str], rng: np.random.Generator,
                   n_boot: int = 2000) -> RankStability:
    """Rank methods (columns of ``values``, shape (n_cases, n_methods)) by their mean over cases.

    Cases are resampled with replacement (all methods together, so pairing is kept); ties share
    the best rank (``rankdata(method='min')``).
    """
    from scipy.stats import rankdata

    values = np.asarray(values, dtype=float)
    means = values.mean(axis=0)
    idx = rng.integers(0, values.shape[0], size=(n_boot, values.shape[0]))
    boot_means = values[idx].mean(axis=1)  # (n_boot, n_methods)
    boot_ranks = rankdata(-boot_means, method="min", axis=1)
    low, high = np.quantile(boot_ranks, [0.025, 0.975], axis=0)
    return RankStability(list(names), means.tolist(), rankdata(-means, method="min").astype(int).tolist(),
                         boot_ranks.mean(axis=0).tolist(), (boot_ranks == 1).mean(axis=0).tolist(),
                         [(int(lo), int(hi)) for lo, hi in zip(np.floor(low), np.ceil(high))])
