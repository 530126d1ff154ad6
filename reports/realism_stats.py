"""Statistics comparing radiomics feature sets (real vs synthetic tumors, organ vs organ).

All functions take plain (N, F) float arrays or DataFrames; randomness is an explicit
``np.random.Generator`` or integer seed passed in.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np


def clean_features(frame: Any, columns: Sequence[str], max_nan_frac: float = 0.2) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Finite, non-constant feature matrix.

    Drops features that are NaN/inf in more than ``max_nan_frac`` of rows, then rows with any
    remaining non-finite value, then features constant over the kept rows.

    Returns:
        (X (N', F') float64, kept feature names, kept row mask (N,) bool).
    """
    values = frame[list(columns)].to_numpy(dtype=float)
    finite = np.isfinite(values)
    keep_cols = finite.mean(axis=0) >= 1.0 - max_nan_frac if len(values) else np.zeros(len(columns), bool)
    values, finite = values[:, keep_cols], finite[:, keep_cols]
    keep_rows = finite.all(axis=1)
    values = values[keep_rows]
    names = [c for c, k in zip(columns, keep_cols) if k]
    varying = values.std(axis=0) > 1e-12 if len(values) > 1 else np.zeros(len(names), bool)
    return values[:, varying], [n for n, v in zip(names, varying) if v], keep_rows


def standardize(reference: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Z-score every array with the mean/std of ``reference`` (std 0 -> 1)."""
    mean, std = reference.mean(axis=0), reference.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    return [(a - mean) / std for a in (reference, *others)]


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two (N, F) samples (as in FID).

    ``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))``. 0 for identical sets, grows with a
    mean shift or a covariance change. Callers standardise features first (see
    :func:`frechet_radiomics_distance`), so the value is in squared standard-deviation units.
    """
    from scipy import linalg

    a, b = np.atleast_2d(a), np.atleast_2d(b)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():  # singular when N < F (few tumors, 91 features): expected
        warnings.simplefilter("ignore")
        covmean = linalg.sqrtm(cov_a @ cov_b)
    covmean = np.real(covmean)  # tiny imaginary parts come from round-off on singular covariances
    value = float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))
    return max(value, 0.0)


def frechet_radiomics_distance(real: np.ndarray, other: np.ndarray) -> float:
    """Frechet distance after z-scoring both sets with the real set's statistics."""
    real_z, other_z = standardize(real, other)
    return frechet_distance(real_z, other_z)


@dataclass(frozen=True)
class TwoSampleResult:
    """Classifier two-sample test: cross-validated AUC of real-vs-other, 0.5 = indistinguishable."""

    auc: float
    ci_low: float
    ci_high: float
    n_a: int
    n_b: int


def classifier_two_sample_test(a: np.ndarray, b: np.ndarray, seed: int = 0, n_splits: int = 5,
                               n_repeats: int = 3, n_boot: int = 500) -> TwoSampleResult:
    """Cross-validated logistic-regression AUC separating sample ``a`` (0) from ``b`` (1).

    Out-of-fold probabilities are averaged over ``n_repeats`` stratified k-fold splits; the AUC
    of those is reported with a 95% percentile bootstrap CI over tumors (``n_boot`` resamples).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import RepeatedStratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.concatenate([a, b]).astype(float)
    y = np.r_[np.zeros(len(a), int), np.ones(len(b), int)]
    n_splits = min(n_splits, len(a), len(b))
    if n_splits < 2:
        return TwoSampleResult(float("nan"), float("nan"), float("nan"), len(a), len(b))
    cv = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=seed)
    prob, count = np.zeros(len(y)), np.zeros(len(y))
    for train, test in cv.split(x, y):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
        model.fit(x[train], y[train])
        prob[test] += model.predict_proba(x[test])[:, 1]
        count[test] += 1
    prob /= count
    auc = rank_auc(y, prob)
    low, high = _bootstrap_auc_ci(y, prob, np.random.default_rng(seed), n_boot)
    return TwoSampleResult(auc, low, high, len(a), len(b))


def rank_auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC via the Mann-Whitney rank sum (ties count half); y in {0, 1}."""
    from scipy.stats import rankdata

    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    ranks = rankdata(score)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _bootstrap_auc_ci(y: np.ndarray, prob: np.ndarray, rng: np.random.Generator,
                      n_boot: int) -> tuple[float, float]:
    aucs = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() != y[idx].max():  # both classes needed for an AUC
            aucs.append(rank_auc(y[idx], prob[idx]))
    if not aucs:
        return float("nan"), float("nan")
    return float(np.percentile(aucs, 2.5)), float(np.percentile(aucs, 97.5))


def effect_sizes(real: np.ndarray, other: np.ndarray, names: Sequence[str]) -> Any:
    """Per-feature standardised mean difference (other - real, pooled SD) and KS statistic.

    Returns a DataFrame ``feature, smd, abs_smd, ks, ks_p, mean_real, mean_other`` sorted by
    ``abs_smd`` descending.
    """
    import pandas as pd
    from scipy import stats

    rows = []
    for j, name in enumerate(names):
        r, o = real[:, j], other[:, j]
        pooled = np.sqrt((r.var(ddof=1) + o.var(ddof=1)) / 2) if min(len(r), len(o)) > 1 else 0.0
        smd = (o.mean() - r.mean()) / pooled if pooled > 1e-12 else 0.0
        with warnings.catch_warnings():  # "exact calculation unsuccessful" falls back to asymptotic
            warnings.simplefilter("ignore")
            ks = stats.ks_2samp(r, o)
        rows.append({"feature": name, "smd": smd, "abs_smd": abs(smd), "ks": ks.statistic,
                     "ks_p": ks.pvalue, "mean_real": r.mean(), "mean_other": o.mean()})
    table = pd.DataFrame(rows)
    return table.sort_values("abs_smd", ascending=False, kind="stable").reset_index(drop=True)


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score 95% interval for a binomial proportion (NaN, NaN) when n == 0."""
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def group_classifier_accuracy(x: np.ndarray, groups: Sequence[str], seed: int = 0,
                              n_splits: int = 5) -> dict[str, Any]:
    """Cross-validated multinomial logistic-regression accuracy at telling ``groups`` apart.

    Returns ``{"accuracy", "ci_low", "ci_high", "chance", "n", "n_groups"}``; chance is the
    majority-class fraction (what always guessing the commonest group scores).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    labels, counts = np.unique(np.asarray(groups), return_counts=True)
    out = {"n": len(groups), "n_groups": len(labels),
           "chance": float(counts.max() / counts.sum()) if len(counts) else float("nan")}
    n_splits = min(n_splits, int(counts.min()) if len(counts) else 0)
    if len(labels) < 2 or n_splits < 2:
        return {**out, "accuracy": float("nan"), "ci_low": float("nan"), "ci_high": float("nan")}
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    pred = cross_val_predict(model, x, np.asarray(groups), cv=cv)
    correct = int((pred == np.asarray(groups)).sum())
    low, high = wilson_interval(correct, len(groups))
    return {**out, "accuracy": correct / len(groups), "ci_low": low, "ci_high": high}


def pairwise_frechet(x: np.ndarray, groups: Sequence[str]) -> Any:
    """Symmetric table of Frechet distances between groups (z-scored on all rows pooled)."""
    import pandas as pd

    groups = np.asarray(groups)
    (xz,) = standardize(x)
    names = sorted(set(groups.tolist()))
    table = pd.DataFrame(0.0, index=names, columns=names)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            value = frechet_distance(xz[groups == a], xz[groups == b])
            table.loc[a, b] = table.loc[b, a] = value
    return table


def embed_2d(x: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """(N, 2) embedding of z-scored features by PCA or t-SNE (perplexity adapted to N)."""
    (xz,) = standardize(x)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(max(2.0, min(30.0, (len(xz) - 1) / 3)))
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(xz)
    from sklearn.decomposition import PCA

    n_comp = min(2, xz.shape[0], xz.shape[1])
    coords = PCA(n_components=n_comp, random_state=seed).fit_transform(xz)
    return np.pad(coords, ((0, 0), (0, 2 - n_comp)))
