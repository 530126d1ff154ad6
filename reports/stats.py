"""Paired statistics for regime comparisons: Wilcoxon signed-rank and a seeded bootstrap CI."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PairedComparison:
    """Synthetic minus real over the same cases (values in the unit of the inputs).

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
    """Percentile bootstrap CI of the mean of ``diffs`` (shape (n,)), resampling cases."""
    diffs = np.asarray(diffs, dtype=float)
    if diffs.size < 2:
        return math.nan, math.nan
    idx = rng.integers(0, diffs.size, size=(n_boot, diffs.size))
    means = diffs[idx].mean(axis=1)
    tail = (1.0 - level) / 2.0
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


def wilcoxon_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided paired Wilcoxon signed-rank p-value; NaN when the test is undefined."""
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
