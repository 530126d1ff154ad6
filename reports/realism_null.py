"""What a realism score would be by chance: a size-matched real-vs-real floor and permutation tests.

Two questions, two tools:

- *Is the generator distinguishable from real at all?* A permutation test of the full-sample
  statistic (real vs generator at ``n_real`` vs ``n_other``): tumor labels are shuffled, the
  statistic recomputed, ``p = (1 + #{T_perm >= T_obs}) / (1 + n_perm)`` (Phipson & Smyth 2010,
  never 0, exact under exchangeability).
- *How far from real is it, against the noise floor?* :func:`matched_floor`: in each repeat the
  real tumors are split into two disjoint random sets A and B of size ``m`` and ``m`` generator
  tumors are drawn; the score is ``S(A, G)``, the floor ``S(A, B)``. Both use the same A and the
  same ``m`` on both sides, and the feature space is fitted on A only, so for a generator that
  samples the real distribution (A, G) and (A, B) have the same joint law and the floor equals
  the score in expectation: exactly unbiased at the comparison's sample size.

Feature spaces are fitted on real tumors only (:class:`RealSpace`): another sample is only
projected, so a generator's score never depends on which other generators ran.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from reports.realism_stats import frechet_distance

Statistic = Callable[[np.ndarray, np.ndarray], dict[str, float]]


@dataclass(frozen=True)
class RealSpace:
    """z-scoring with the real tumors' mean/SD, then their top principal axes.

    Features constant among the real tumors are left out (their z-score would be undefined).
    """

    mean: np.ndarray
    scale: np.ndarray
    keep: np.ndarray
    axes: np.ndarray  # (k, F_kept) principal axes of the z-scored real tumors

    @classmethod
    def fit(cls, real: np.ndarray, n_components: int) -> "RealSpace":
        mean, std = real.mean(axis=0), real.std(axis=0)
        keep = std > 1e-12
        z = (real[:, keep] - mean[keep]) / std[keep]
        _, _, axes = np.linalg.svd(z - z.mean(axis=0), full_matrices=False)
        return cls(mean, std, keep, axes[: min(n_components, axes.shape[0])])

    def z(self, x: np.ndarray) -> np.ndarray:
        return (x[:, self.keep] - self.mean[self.keep]) / self.scale[self.keep]

    def pcs(self, x: np.ndarray) -> np.ndarray:
        return self.z(x) @ self.axes.T


def frechet_scores(real: np.ndarray, other: np.ndarray, n_components: int) -> dict[str, float]:
    """Frechet distance in the real-fitted z-space (``frechet``) and on its top principal
    components (``frechet_pca``); NaN when a side has fewer than 2 tumors."""
    if min(len(real), len(other)) < 2:
        return {"frechet": float("nan"), "frechet_pca": float("nan")}
    space = RealSpace.fit(real, n_components)
    return {"frechet": frechet_distance(space.z(real), space.z(other)),
            "frechet_pca": frechet_distance(space.pcs(real), space.pcs(other))}


def stable_seed(*parts: object) -> list[int]:
    """Seed sequence from names (crc32, stable across processes, unlike ``hash``)."""
    return [zlib.crc32(str(p).encode()) for p in parts]


def permutation_test(a: np.ndarray, b: np.ndarray, statistic: Statistic, n_perm: int,
                     rng: np.random.Generator) -> dict[str, tuple[float, float]]:
    """``{name: (observed, one-sided p)}`` for every entry of ``statistic(a, b)``; large = different.

    Each permutation reassigns the pooled rows to groups of the original sizes.
    """
    observed = statistic(a, b)
    pooled, n_a = np.concatenate([a, b]), len(a)
    exceed = dict.fromkeys(observed, 0)
    for _ in range(n_perm):
        order = rng.permutation(len(pooled))
        perm = statistic(pooled[order[:n_a]], pooled[order[n_a:]])
        for name, value in perm.items():
            exceed[name] += bool(value >= observed[name] - 1e-12)
    return {name: (observed[name], (1 + exceed[name]) / (1 + n_perm)) for name in observed}


def matched_floor(real: np.ndarray, other: np.ndarray, statistic: Statistic, n_repeats: int,
                  real_rng: np.random.Generator, other_rng: np.random.Generator) -> dict[str, float]:
    """Score and real-vs-real floor at the same size ``m = min(n_real // 2, n_other)`` per side.

    Returns ``n_matched`` and, per statistic ``s``: ``s_matched`` / ``s_matched_sd`` (mean and SD
    over repeats of ``S(A, G)``) and ``s_floor`` / ``s_floor_sd`` (same for ``S(A, B)``).
    ``real_rng`` draws the real splits (one per organ, shared by every generator); ``other_rng``
    the generator subsets.
    """
    m = min(len(real) // 2, len(other))
    if m < 2 or n_repeats < 1:
        return {"n_matched": m}
    scores: dict[str, list[float]] = {}
    floors: dict[str, list[float]] = {}
    for _ in range(n_repeats):
        order = real_rng.permutation(len(real))
        ref, twin = real[order[:m]], real[order[m:2 * m]]
        drawn = other[other_rng.choice(len(other), m, replace=False)]
        for name, value in statistic(ref, drawn).items():
            scores.setdefault(name, []).append(value)
        for name, value in statistic(ref, twin).items():
            floors.setdefault(name, []).append(value)
    out: dict[str, float] = {"n_matched": m}
    for name in scores:
        out[f"{name}_matched"], out[f"{name}_matched_sd"] = _mean_sd(scores[name])
        out[f"{name}_floor"], out[f"{name}_floor_sd"] = _mean_sd(floors[name])
    return out


def _mean_sd(values: list[float]) -> tuple[float, float]:
    values_arr = np.asarray(values, float)
    sd = float(values_arr.std(ddof=1)) if len(values_arr) > 1 else float("nan")
    return float(values_arr.mean()), sd
