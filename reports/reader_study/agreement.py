"""Reader-study statistics: case-clustered bootstrap, tests against chance, kappa, confidence ROC AUC.

Reads of the same case by several readers are not independent (an easy case is easy for all),
so pooled intervals resample *cases* with all their reads, and the pooled test against chance
is a sign test on per-case proportions; per-reader rows (one read per case) use Wilson
intervals and an exact binomial test.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from reports.realism_stats import rank_auc, wilson_interval

MISSING_CONFIDENCE = 3  # a read without a confidence rating ranks as "unsure" (middle of 1-5)


def binomial_row(successes: int, n: int, chance: float) -> dict[str, Any]:
    """Proportion with a Wilson 95% interval and a two-sided exact binomial p against ``chance``."""
    from scipy.stats import binomtest

    low, high = wilson_interval(successes, n)
    p = binomtest(successes, n, chance).pvalue if n else float("nan")
    return {"value": successes / n if n else float("nan"), "successes": successes, "n": n,
            "ci_low": low, "ci_high": high, "ci_method": "wilson", "p_value": float(p)}


def clustered_row(num: np.ndarray, den: np.ndarray, chance: float, rng: np.random.Generator,
                  n_boot: int = 2000) -> dict[str, Any]:
    """Pooled proportion ``sum(num) / sum(den)`` over cases (num/den = correct and answered reads
    per case) with a case-clustered percentile bootstrap CI and a case-level sign test vs ``chance`` (cases
    whose readers did better than chance vs worse; ties dropped): exact, and it counts cases,
    not reads."""
    from scipy.stats import binomtest

    num, den = np.asarray(num, float)[np.asarray(den) > 0], np.asarray(den, float)[np.asarray(den) > 0]
    out = {"successes": int(num.sum()), "n": int(den.sum()), "ci_method": "case bootstrap"}
    if not len(den):
        return {**out, "value": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "p_value": float("nan")}
    idx = rng.integers(0, len(den), (n_boot, len(den)))
    boot = num[idx].sum(axis=1) / den[idx].sum(axis=1)
    above, below = int((num / den > chance).sum()), int((num / den < chance).sum())
    p = float(binomtest(above, above + below, 0.5).pvalue) if above + below else 1.0
    return {**out, "value": float(num.sum() / den.sum()), "ci_low": float(np.percentile(boot, 2.5)),
            "ci_high": float(np.percentile(boot, 97.5)), "p_value": p}


def confidence_score(answers: Sequence[str], confidence: Sequence[Any], positive: str) -> np.ndarray:
    """Signed rating for an ROC curve: +confidence when the reader answered ``positive``, else
    -confidence (5 = certain synthetic ... -5 = certain real)."""
    conf = np.array([float(c) if str(c).strip() not in ("", "nan") else MISSING_CONFIDENCE for c in confidence])
    return np.where(np.asarray(answers) == positive, conf, -conf)


def auc_row(truth: np.ndarray, score: np.ndarray, cases: np.ndarray, rng: np.random.Generator,
            n_boot: int = 1000) -> dict[str, Any]:
    """ROC AUC of ``score`` for ``truth`` (0/1) with a case-clustered bootstrap CI; for a single
    reader (each case once) the Mann-Whitney p against AUC 0.5."""
    from scipy.stats import mannwhitneyu

    nan = float("nan")
    out = {"successes": nan, "n": len(truth), "ci_method": "case bootstrap", "p_value": nan}
    if len(set(truth.tolist())) < 2:
        return {**out, "value": nan, "ci_low": nan, "ci_high": nan}
    # weighted Mann-Whitney: a bootstrap draw weights each read by how often its case was drawn
    _, inverse = np.unique(cases, return_inverse=True)
    n_cases, pos, neg = inverse.max() + 1, truth == 1, truth == 0
    wins = (score[pos][:, None] > score[neg][None, :]) + 0.5 * (score[pos][:, None] == score[neg][None, :])
    draws = rng.integers(0, n_cases, (n_boot, n_cases))
    weights = np.stack([np.bincount(d, minlength=n_cases) for d in draws])[:, inverse].astype(float)
    w_pos, w_neg = weights[:, pos], weights[:, neg]
    total = w_pos.sum(axis=1) * w_neg.sum(axis=1)
    boots = np.einsum("bi,ij,bj->b", w_pos, wins, w_neg)[total > 0] / total[total > 0]
    if n_cases == len(cases):
        out["p_value"] = float(mannwhitneyu(score[truth == 1], score[truth == 0]).pvalue)
    low, high = np.percentile(boots, [2.5, 97.5]) if len(boots) else (nan, nan)
    return {**out, "value": rank_auc(truth, score), "ci_low": float(low), "ci_high": float(high)}


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float:
    """Cohen's kappa of two readers' answers on the same cases."""
    from sklearn.metrics import cohen_kappa_score

    return float(cohen_kappa_score(list(a), list(b))) if len(a) else float("nan")


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa from a (cases, categories) table of how many readers chose each category;
    every case needs the same number of readers (>= 2)."""
    counts = np.asarray(counts, float)
    n = counts.sum(axis=1)
    if len(counts) == 0 or n.min() != n.max() or n[0] < 2:
        return float("nan")
    per_case = ((counts ** 2).sum(axis=1) - n) / (n * (n - 1))
    shares = counts.sum(axis=0) / counts.sum()
    expected = float((shares ** 2).sum())
    return float((per_case.mean() - expected) / (1 - expected)) if expected < 1 else float("nan")


def agreement_table(answers: dict[str, Any], choices: Sequence[str]) -> Any:
    """Cohen's kappa per reader pair (cases both answered) and Fleiss' kappa over all readers
    (cases every reader answered). ``answers``: reader -> Series case_id -> answer ('' = none)."""
    import pandas as pd

    names = sorted(answers)
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            both = pd.concat([answers[a], answers[b]], axis=1, join="inner").replace("", np.nan).dropna()
            rows.append({"statistic": "cohen_kappa", "readers": f"{a} & {b}", "kappa": cohen_kappa(both.iloc[:, 0], both.iloc[:, 1]),
                         "n_cases": len(both)})
    if len(names) > 2:
        table = pd.concat([answers[n] for n in names], axis=1, join="inner").replace("", np.nan).dropna()
        counts = np.stack([(table == c).sum(axis=1).to_numpy() for c in choices], axis=1)
        rows.append({"statistic": "fleiss_kappa", "readers": " & ".join(names), "kappa": fleiss_kappa(counts),
                     "n_cases": len(table)})
    return pd.DataFrame(rows, columns=["statistic", "readers", "kappa", "n_cases"])
