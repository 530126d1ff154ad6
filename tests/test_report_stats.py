"""The report's pre-specified tests and intervals (docs/statistics.md): hand-worked examples,
cross-checks against scipy / statsmodels called with the same options, a coverage simulation."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from reports.bootstrap import N_BOOT, clustered_proportion, paired_difference
from reports.records import CASE_COLUMNS, LESION_COLUMNS
from reports.stats import family_sizes, holm_by_family, mcnemar_exact, wilcoxon_signed_rank, wilson_ci


def test_wilcoxon_pratt_exact_with_zeros_and_ties_by_hand():
    """d = 0, 2, 2, -3, 4, 5. Pratt: rank |d| with the zero (1; 2.5, 2.5; 4; 5; 6), drop the zero's rank.
    T- = 4; of the 2^5 sign flips of {2.5, 2.5, 4, 5, 6}, T- <= 4 for {}, {2.5}, {2.5'}, {4}: 4/32, so
    p = 2 * 4/32 = 0.25. scipy's default (zeros dropped before ranking) gives 10/32 here instead."""
    from scipy.stats import wilcoxon

    result = wilcoxon_signed_rank([0.0, 2.0, 2.0, -3.0, 4.0, 5.0])
    assert result.p_value == pytest.approx(8 / 32, abs=1e-15) and result.statistic == 16.0
    assert result.method == "exact"
    assert wilcoxon([0.0, 2.0, 2.0, -3.0, 4.0, 5.0]).pvalue == pytest.approx(10 / 32)  # the old default


def test_wilcoxon_matches_scipy_called_with_the_same_options():
    """Exact: scipy's sign-flip enumeration (PermutationMethod(n_resamples=inf)) with Pratt zeros, on
    samples full of zeros and ties; normal approximation: scipy's asymptotic Pratt test."""
    from scipy.stats import PermutationMethod, wilcoxon

    rng = np.random.default_rng(7)
    for _ in range(25):
        d = rng.choice([-7.5, -3.0, -1.0, 0.0, 0.0, 1.0, 2.0, 3.0, 5.0], size=int(rng.integers(2, 11)))
        if not d.any():
            assert math.isnan(wilcoxon_signed_rank(d).p_value)
            continue
        ref = wilcoxon(d, zero_method="pratt", method=PermutationMethod(n_resamples=np.inf)).pvalue
        assert wilcoxon_signed_rank(d).p_value == pytest.approx(ref, abs=1e-12), d
    d = np.round(rng.normal(1.0, 3.0, 80), 1)
    d[:6] = 0.0
    approx = wilcoxon_signed_rank(d, exact_max_n=50)
    assert approx.method == "normal approximation"
    assert approx.p_value == pytest.approx(wilcoxon(d, zero_method="pratt", method="asymptotic",
                                                    correction=False).pvalue, rel=1e-12)
    assert wilcoxon_signed_rank(d).method == "exact"  # 80 cases: exact is feasible and used


def test_mcnemar_exact_by_hand_and_against_scipy():
    """7 lesions hit by B only, 1 by A only: P(X <= 1 | Bin(8, 1/2)) = 9/256, two-sided 18/256."""
    from scipy.stats import binomtest

    assert mcnemar_exact(1, 7).p_value == pytest.approx(18 / 256)
    for a, b in ((0, 5), (3, 9), (4, 4), (10, 2)):
        assert mcnemar_exact(a, b).p_value == pytest.approx(binomtest(b, a + b, 0.5).pvalue)
    assert math.isnan(mcnemar_exact(0, 0).p_value)


def test_holm_within_families_by_hand():
    """Families x = (0.01, 0.04), y = (0.03, 0.005): x -> (2 * 0.01, max(0.02, 0.04)); y -> (0.03, 0.01).
    One family over all four would give (0.03, 0.06, 0.06, 0.02)."""
    from statsmodels.stats.multitest import multipletests

    p, families = [0.01, 0.04, 0.03, 0.005, math.nan], ["x", "x", "y", "y", "y"]
    adjusted = holm_by_family(p, families)
    assert adjusted[:4] == pytest.approx([0.02, 0.04, 0.03, 0.01]) and math.isnan(adjusted[4])
    assert adjusted[2:4] == pytest.approx(multipletests([0.03, 0.005], method="holm")[1])
    assert family_sizes(p, families) == {"x": 2, "y": 2}


def test_defaults_resample_at_least_10000_times():
    import inspect

    from reports.build import ReportOptions

    assert N_BOOT >= 10_000 and ReportOptions().n_boot >= 10_000
    assert inspect.signature(paired_difference).parameters["n_boot"].default >= 10_000


def _coverage(draw, truth: float, reps: int, n: int = 12, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(reps):
        low, high = paired_difference(np.zeros(n), draw(rng, n), rng).ci
        hits += low <= truth <= high
    return hits / reps


def _within_mc_error(coverage: float, reps: int, level: float = 0.95) -> bool:
    return abs(coverage - level) <= 3.0 * math.sqrt(level * (1 - level) / reps)


def test_interval_coverage_at_12_cases():
    """Skewed paired differences (exponential, mean 0) at n = 12, 400 data sets with the default
    10,000 resamples: the 95 % interval covers the true mean within 3 Monte-Carlo standard errors,
    i.e. 91.7-98.3 % (percentile bootstrap: about 88 %, scipy's BCa about 90 %, both outside)."""
    coverage = _coverage(lambda rng, n: rng.exponential(5.0, n) - 5.0, 0.0, reps=400)
    assert _within_mc_error(coverage, 400), coverage


@pytest.mark.slow
def test_interval_coverage_at_12_cases_three_shapes():
    """3000 data sets per shape (Monte-Carlo sd 0.4 points). Measured: normal 94.6 %, skewed 93.4 %,
    zero-inflated 93.0 %: nominal within MC error for symmetric differences, 1.5-2 points short for
    skewed ones at n = 12 (the percentile interval is 88-92 %, BCa 89-90 %)."""
    shapes = {"normal": (lambda rng, n: rng.normal(2.0, 5.0, n), 2.0, 0.95),
              "skewed": (lambda rng, n: rng.exponential(5.0, n) - 5.0, 0.0, 0.925),
              "zero-inflated": (lambda rng, n: np.where(rng.random(n) < 0.3, 0.0, rng.normal(3.0, 8.0, n)), 2.1,
                                0.925)}
    for name, (draw, truth, floor) in shapes.items():
        coverage = _coverage(draw, truth, reps=3000, seed=1)
        assert coverage >= floor - 3.0 * math.sqrt(0.95 * 0.05 / 3000) and coverage <= 0.97, (name, coverage)
    assert _within_mc_error(_coverage(shapes["normal"][0], 2.0, reps=3000, seed=1), 3000)


def test_hierarchical_bootstrap_widens_with_seed_variation():
    """b's three seeds differ by a constant offset per seed (-6, 0, +6): the seed-averaged differences
    are all 5, so cases alone give a point interval; resampling seeds gives the seed spread."""
    a = np.linspace(40.0, 62.0, 12)
    b = np.stack([a + 5.0 + offset for offset in (-6.0, 0.0, 6.0)])
    cases_only = paired_difference(a, b.mean(axis=0), np.random.default_rng(0))
    hierarchical = paired_difference(a, b, np.random.default_rng(0))
    assert cases_only.ci == pytest.approx((5.0, 5.0)) and hierarchical.mean_diff == pytest.approx(5.0)
    low, high = hierarchical.ci
    assert low < 5.0 - 2.0 and high > 5.0 + 2.0  # seed means of 3 resampled seeds spread by ±6


def test_hierarchical_interval_coverage_with_seed_effects():
    """3 seeds per regime, each seed shifting all 12 cases by N(0, 4²), case noise N(0, 2²), true
    Δ = 2 (over seeds and cases): the interval covers it within Monte-Carlo error (measured 95.7 %;
    studentizing with the case part of the standard error alone gave 36 %)."""
    rng, hits, reps = np.random.default_rng(0), 0, 200
    for _ in range(reps):
        case = rng.normal(0.0, 5.0, 12)
        a = 50.0 + case + rng.normal(0.0, 2.0, (3, 12)) + rng.normal(0.0, 4.0, (3, 1))
        b = 52.0 + case + rng.normal(0.0, 2.0, (3, 12)) + rng.normal(0.0, 4.0, (3, 1))
        low, high = paired_difference(a, b, rng, n_boot=2000).ci
        hits += low <= 2.0 <= high
    assert _within_mc_error(hits / reps, reps), hits / reps


def test_clustered_interval_widens_when_lesions_cluster():
    """8 patients x 3 lesions, each patient all hit or all missed: 12/24 lesions but only 8 independent
    units, design effect ~ 3. Singleton patients and one seed: exactly Wilson."""
    hits, lesions = np.array([[3, 3, 3, 3, 0, 0, 0, 0]]), np.full(8, 3)
    out = clustered_proportion(hits, lesions, np.random.default_rng(0))
    assert out["value"] == 50.0 and out["n"] == 24 and 2.4 < out["deff"] < 3.3
    wilson = wilson_ci(12, 24)
    assert out["ci"][1] - out["ci"][0] > 1.4 * 100 * (wilson[1] - wilson[0])
    single = clustered_proportion(np.array([[1, 0, 1, 1]]), np.ones(4), np.random.default_rng(0))
    assert single["deff"] == 1.0 and single["ci"] == pytest.approx(tuple(100 * v for v in wilson_ci(3, 4)))


def _lesion_rows(calls: dict[str, list[bool]], organ: str = "liver") -> pd.DataFrame:
    rows = []
    for regime, hits in calls.items():
        for i, hit in enumerate(hits):
            rows.append({"case_id": f"p{i // 2}", "lesion": i % 2, "fold": 0, "organ": organ, "backbone": "unet",
                         "regime": regime, "seed": 0, "source_organ": organ, "model_organ": organ, "hit": hit,
                         "radius_mm": 8.0, "early": True, "size_bin": "5-10"})
    return pd.DataFrame(rows, columns=LESION_COLUMNS)


def test_paired_detection_uses_mcnemar_on_shared_lesions():
    """16 shared lesions: 1 hit by real only, 7 by hu only -> exact McNemar 18/256; a lesion scored by
    one regime only is left out; Holm runs within each organ (two organs, one pair each: p unchanged)."""
    from reports.paired_detection import detection_pairs_table

    real = [True] * 5 + [False] * 8 + [True] + [False, False]
    hu = [True] * 5 + [True] * 7 + [False] + [False] + [False, False]
    frame = pd.concat([_lesion_rows({"real": real, "hu": hu}), _lesion_rows({"real": real + [True], "hu": hu},
                                                                             "kidney")])
    table = detection_pairs_table(frame, n_boot=2000)
    head = [c.name for c in table.columns]
    liver = dict(zip(head, table.rows[0]))
    assert (liver["hit by A only"], liver["hit by B only"], liver["n lesions"], liver["patients"]) == (1, 7, 16, 8)
    assert liver["McNemar p"] == pytest.approx(18 / 256) and liver["Holm p"] == pytest.approx(18 / 256)
    kidney = dict(zip(head, table.rows[1]))
    assert kidney["n lesions"] == 16 and kidney["Holm family"] == "kidney · detection"  # 17th lesion unpaired
    assert "exact McNemar" in table.caption and "Holm families" in " ".join(table.notes)


def test_patient_sensitivity_in_both_readings():
    """p0: a call far from the tumor (rule call yes, lesion hit no); p1: lesion hit; p2: nothing."""
    from reports.detection import patient_table

    base = {"fold": 0, "organ": "liver", "backbone": "unet", "regime": "real", "seed": 0, "source_organ": "liver",
            "model_organ": "liver", "has_tumor": True, "n_lesions": 1}
    rows = [{**base, "case_id": "p0", "pred_has_tumor": True, "n_hit": 0},
            {**base, "case_id": "p1", "pred_has_tumor": True, "n_hit": 1},
            {**base, "case_id": "p2", "pred_has_tumor": False, "n_hit": 0},
            {**base, "case_id": "h0", "pred_has_tumor": True, "n_hit": 0, "has_tumor": False, "n_lesions": 0}]
    table = patient_table(pd.DataFrame(rows, columns=CASE_COLUMNS))
    row = dict(zip([c.name for c in table.columns], table.rows[0]))
    assert row["TP/(TP+FN), rule call"] == (2.0, 3) and row["TP/(TP+FN), lesion hit"] == (1.0, 3)
    assert row["TN/(TN+FP)"] == (0.0, 1)
    assert "'rule call'" in table.caption and "'lesion hit'" in table.caption


def _case_rows(seeds: dict[str, tuple[int, ...]], n: int = 10) -> pd.DataFrame:
    rows = []
    for regime, regime_seeds in seeds.items():
        for seed in regime_seeds:
            for i in range(n):
                dsc = 0.4 + 0.03 * i + (0.05 + 0.01 * (i % 3) if regime == "hu" else 0.0) + 0.1 * seed
                rows.append({"case_id": f"c{i}", "fold": i % 2, "organ": "liver", "backbone": "unet",
                             "regime": regime, "seed": seed, "source_organ": "liver", "model_organ": "liver",
                             "has_tumor": True, "tumor_dsc": dsc, "tumor_nsd": dsc})
    return pd.DataFrame(rows, columns=CASE_COLUMNS)


def test_one_seed_says_intervals_cover_test_cases_only():
    from reports import plan
    from reports.inference import paired_table, ranking_table

    one = paired_table(_case_rows({"real": (0,), "hu": (0,)}), n_boot=2000)
    assert plan.ONE_SEED in one.notes and plan.ONE_SEED in ranking_table(_case_rows({"real": (0,), "hu": (0,)}),
                                                                           n_boot=2000).notes
    several = paired_table(_case_rows({"real": (0,), "hu": (0, 1, 2)}), n_boot=2000)
    assert plan.ONE_SEED not in several.notes and "hierarchical" in several.caption
    head = [c.name for c in several.columns]
    one_row, several_row = dict(zip(head, one.rows[0])), dict(zip(head, several.rows[0]))
    assert several_row["seeds A/B"] == "1/3"
    width = lambda row: row["95% CI of Δ"][1] - row["95% CI of Δ"][0]
    assert width(several_row) > 3 * width(one_row)  # the seeds' 0.1-per-seed offsets enter the interval
