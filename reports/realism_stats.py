"""Statistics comparing radiomics feature sets (real vs synthetic tumors, organ vs organ).

All functions take plain (N, F) float arrays or DataFrames; randomness is an explicit
``np.random.Generator`` or integer seed passed in.
"""
from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np


def clean_features(frame: Any, columns: Sequence[str], reference: np.ndarray | None = None,
                   max_nan_frac: float = 0.2) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Finite feature matrix whose columns are chosen on the ``reference`` rows only.

    Keeps features finite in at least ``1 - max_nan_frac`` of the reference rows (default: all
    rows) and not constant among them, then drops every row with a non-finite kept value. With
    the real tumors as reference, a generator whose features fail cannot remove a feature from
    (and so change the score of) another generator; it only loses its own rows.

    Returns:
        (X (N', F') float64, kept feature names, kept row mask (N,) bool).
    """
    values = frame[list(columns)].to_numpy(dtype=float)
    reference = np.ones(len(values), bool) if reference is None else np.asarray(reference, bool)
    ref = values[reference]
    finite = np.isfinite(ref)
    keep_cols = finite.mean(axis=0) >= 1.0 - max_nan_frac if len(ref) else np.zeros(len(columns), bool)
    with np.errstate(invalid="ignore"):
        spread = np.nanstd(np.where(finite, ref, np.nan), axis=0) if len(ref) > 1 else np.zeros(len(columns))
    keep_cols &= np.nan_to_num(spread) > 1e-12
    keep_rows = np.isfinite(values[:, keep_cols]).all(axis=1)
    names = [c for c, k in zip(columns, keep_cols) if k]
    return values[keep_rows][:, keep_cols], names, keep_rows


def standardize(reference: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Z-score every array with the mean/std of ``reference`` (std 0 -> 1)."""
    mean, std = reference.mean(axis=0), reference.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    return [(a - mean) / std for a in (reference, *others)]


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two (N, F) samples (as in FID).

    ``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))``. 0 for identical sets, grows with a
    mean shift or a covariance change. Callers standardise features first (reports.realism_null
    .RealSpace), so the value is in squared standard-deviation units. ``Tr((S_a S_b)^(1/2))`` is
    the sum of square roots of the eigenvalues of the symmetric ``S_a^(1/2) S_b S_a^(1/2)``: two
    symmetric eigendecompositions instead of a general matrix square root (faster, and stable
    for the rank-deficient covariances of tens of tumors in 91 features).
    """
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    vals, vecs = np.linalg.eigh(cov_a)
    root_a = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    value = float(np.sum((a.mean(axis=0) - b.mean(axis=0)) ** 2) + np.trace(cov_a) + np.trace(cov_b)
                  - 2 * np.sqrt(np.clip(cross, 0, None)).sum())
    return max(value, 0.0)


def c2st_auc(a: np.ndarray, b: np.ndarray, seed: int = 0, n_splits: int = 5, n_repeats: int = 2) -> float:
    """Classifier two-sample test statistic: cross-validated ROC AUC of a standardised logistic
    regression separating ``a`` (0) from ``b`` (1); 0.5 = indistinguishable, 1 = separable.

    Out-of-fold probabilities are averaged over ``n_repeats`` stratified k-fold splits (the
    scaler is fitted inside each training fold). NaN with fewer than 2 rows on a side. Its
    null distribution comes from reports.realism_null (permutation test, matched floor), not
    from a bootstrap over fixed predictions, which ignores the classifier's fitting noise.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import RepeatedStratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.concatenate([a, b]).astype(float)
    y = np.r_[np.zeros(len(a), int), np.ones(len(b), int)]
    n_splits = min(n_splits, len(a), len(b))
    if n_splits < 2:
        return float("nan")
    cv = RepeatedStratifiedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=seed)
    prob, count = np.zeros(len(y)), np.zeros(len(y))
    for train, test in cv.split(x, y):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
        model.fit(x[train], y[train])
        prob[test] += model.predict_proba(x[test])[:, 1]
        count[test] += 1
    return rank_auc(y, prob / count)


def rank_auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC via the Mann-Whitney rank sum (ties count half); y in {0, 1}."""
    from scipy.stats import rankdata

    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    ranks = rankdata(score)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


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


def wilson_interval(successes: int, n: int) -> tuple[float, float]:
    """Wilson score 95% interval (the report's one implementation, `reports.stats.wilson_ci`)."""
    from reports.stats import wilson_ci

    return wilson_ci(successes, n)


def group_classifier_accuracy(x: np.ndarray, groups: Sequence[str], seed: int = 0, n_splits: int = 5,
                              n_perm: int = 0) -> dict[str, Any]:
    """Cross-validated multinomial logistic-regression accuracy at telling ``groups`` apart.

    Returns ``{"accuracy", "ci_low", "ci_high", "chance", "null_mean", "p_value", "n",
    "n_groups"}``: ``chance`` is the majority-class share (always guessing the commonest group),
    ``ci_*`` a Wilson 95% interval, and with ``n_perm > 0`` ``p_value`` is a permutation test
    (group labels shuffled, the same cross-validation rerun; ``(1 + #{acc_perm >= acc}) / (1 +
    n_perm)``) and ``null_mean`` the mean permuted accuracy. The permutation test is the one to
    read: CV accuracy is not a binomial count, so the Wilson interval is only descriptive.
    """
    labels_all = np.asarray(groups)
    labels, counts = np.unique(labels_all, return_counts=True)
    nan = float("nan")
    out = {"n": len(labels_all), "n_groups": len(labels), "chance": float(counts.max() / counts.sum()) if len(counts) else nan,
           "accuracy": nan, "ci_low": nan, "ci_high": nan, "null_mean": nan, "p_value": nan}
    n_splits = min(n_splits, int(counts.min()) if len(counts) else 0)
    if len(labels) < 2 or n_splits < 2:
        return out
    accuracy = _cv_accuracy(x, labels_all, seed, n_splits)
    correct = int(round(accuracy * len(labels_all)))
    out.update(accuracy=accuracy, **dict(zip(("ci_low", "ci_high"), wilson_interval(correct, len(labels_all)))))
    if n_perm > 0:
        rng = np.random.default_rng([seed, 1])
        null = np.array([_cv_accuracy(x, rng.permutation(labels_all), seed, n_splits) for _ in range(n_perm)])
        out.update(null_mean=float(null.mean()), p_value=float((1 + (null >= accuracy - 1e-12).sum()) / (1 + n_perm)))
    return out


def _cv_accuracy(x: np.ndarray, labels: np.ndarray, seed: int, n_splits: int) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return float((cross_val_predict(model, x, labels, cv=cv) == labels).mean())


def size_matched(sizes: np.ndarray, groups: Sequence[str], bin_mm: float, rng: np.random.Generator) -> np.ndarray:
    """Row indices giving every group the same size histogram (bins of ``bin_mm``).

    Per size bin, each group keeps ``min`` over groups of its count in that bin (random rows), so
    a classifier cannot tell the groups apart by size alone. Bins missing from a group are dropped.
    """
    groups = np.asarray(groups)
    bins = np.floor(np.asarray(sizes, float) / bin_mm).astype(int)
    names = np.unique(groups)
    keep = []
    for b in np.unique(bins):
        members = [np.flatnonzero((bins == b) & (groups == g)) for g in names]
        take = min(len(m) for m in members)
        keep += [i for m in members for i in rng.choice(m, take, replace=False)] if take else []
    return np.sort(np.asarray(keep, int))


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
