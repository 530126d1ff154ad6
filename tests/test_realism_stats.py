"""Realism statistics: Frechet distance, classifier two-sample test, effect sizes, Wilson CI."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reports import realism_stats as stats


def test_frechet_is_zero_for_identical_sets_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 6))
    assert stats.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    distances = [stats.frechet_distance(a, a + shift) for shift in (0.5, 1.0, 2.0)]
    # a pure mean shift s in 6 dims adds exactly 6 s^2
    assert distances == pytest.approx([6 * 0.25, 6 * 1.0, 6 * 4.0], rel=1e-6)


def test_frechet_matches_the_matrix_square_root_formula():
    from scipy import linalg

    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(30, 12)), rng.normal(size=(25, 12)) @ rng.normal(size=(12, 12))
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = (np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(cov_a + cov_b)
                - 2 * np.trace(np.real(linalg.sqrtm(cov_a @ cov_b))))
    assert stats.frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_frechet_sees_a_covariance_change():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4000, 2))
    b = rng.normal(size=(4000, 2)) * 2.0  # variance 4: Tr(1+4-2*2) = 1 per dim
    assert stats.frechet_distance(a, b) == pytest.approx(2.0, rel=0.1)


def test_two_sample_auc_near_half_for_same_distribution_and_near_one_for_different():
    rng = np.random.default_rng(2)
    same = stats.c2st_auc(rng.normal(size=(120, 8)), rng.normal(size=(120, 8)), seed=0)
    assert 0.38 < same < 0.62
    shifted = stats.c2st_auc(rng.normal(size=(120, 8)), rng.normal(size=(120, 8)) + 1.5, seed=0)
    assert shifted > 0.97


def test_effect_sizes_rank_the_shifted_feature_first():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(300, 3))
    other = rng.normal(size=(300, 3))
    other[:, 1] += 1.0
    table = stats.effect_sizes(real, other, ["a", "b", "c"])
    assert table.loc[0, "feature"] == "b"
    assert table.loc[0, "smd"] == pytest.approx(1.0, abs=0.15)
    assert table.loc[0, "ks"] > 0.3 and table.loc[0, "ks_p"] < 1e-6


def test_wilson_interval_matches_hand_computation():
    # 8 of 10: centre (0.8 + 1.9208/10)/(1 + 3.8415/10), half-width from the Wilson formula
    low, high = stats.wilson_interval(8, 10)
    assert (low, high) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert stats.wilson_interval(0, 5)[0] == 0.0


def test_clean_features_drops_nan_and_constant_columns():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0], "const": [1.0] * 5,
                          "mostly_nan": [np.nan, np.nan, 1.0, np.nan, 2.0], "one_nan": [1.0, np.nan, 3.0, 4.0, 0.0]})
    x, names, rows = stats.clean_features(frame, list(frame.columns))
    assert names == ["x", "one_nan"] and rows.tolist() == [True, False, True, True, True]
    assert x.shape == (4, 2)


def test_clean_features_chooses_columns_on_the_reference_rows_only():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [1.0, 2.0, np.nan, np.nan], "z": [5.0, 5.0, 1.0, 2.0]})
    x, names, rows = stats.clean_features(frame, list(frame.columns), reference=np.array([1, 1, 0, 0], bool))
    # y is finite on the reference rows, so the others lose their rows, not the feature; z is constant there
    assert names == ["x", "y"] and rows.tolist() == [True, True, False, False]


def test_group_classifier_finds_separable_organs_and_chance_for_mixed():
    rng = np.random.default_rng(4)
    groups = np.repeat(["liver", "kidney", "pancreas"], 30)
    separable = rng.normal(size=(90, 4)) + np.repeat(np.eye(3, 4) * 4, 30, axis=0)
    mixed = rng.normal(size=(90, 4))
    assert stats.group_classifier_accuracy(separable, groups)["accuracy"] > 0.9
    result = stats.group_classifier_accuracy(mixed, groups)
    assert result["chance"] == pytest.approx(1 / 3)
    assert result["accuracy"] < 0.55
    table = stats.pairwise_frechet(separable, groups)
    assert table.loc["liver", "liver"] == 0 and table.loc["liver", "kidney"] > 1


def test_rank_auc_equals_sklearn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 50)
    score = rng.integers(0, 6, 50).astype(float)  # many ties
    assert stats.rank_auc(y, score) == pytest.approx(roc_auc_score(y, score))


def test_realism_scores_rank_a_shifted_generator_above_a_faithful_one():
    from reports.realism_analysis import NullSettings, realism_scores

    rng = np.random.default_rng(6)
    n, f = 60, 10
    x = np.concatenate([rng.normal(size=(n, f)), rng.normal(size=(n, f)), rng.normal(size=(n, f)) + 1.0])
    frame = pd.DataFrame({"organ": "liver", "source": ["real"] * n + ["faithful"] * n + ["shifted"] * n})
    scores, effects = realism_scores(x, frame, [f"f{j}" for j in range(f)], NullSettings(n_perm=19, n_repeats=4))
    by_gen = scores.set_index("generator")
    assert list(by_gen.index) == ["faithful", "shifted"]
    assert by_gen.loc["shifted", "c2st_auc"] > 0.9 > 0.7 > by_gen.loc["faithful", "c2st_auc"]
    assert by_gen.loc["shifted", "frechet"] > 3 * by_gen.loc["faithful", "frechet"]
    assert by_gen.loc["shifted", "frechet_pca"] > 3 * by_gen.loc["faithful", "frechet_pca"]
    # permutation p: the smallest possible (1/20) for the shift, not small for the faithful one
    assert by_gen.loc["shifted", ["frechet_p", "frechet_pca_p", "c2st_auc_p"]].tolist() == [0.05] * 3
    assert by_gen.loc["faithful", "c2st_auc_p"] > 0.1
    assert by_gen.loc["shifted", "frechet_matched"] > by_gen.loc["shifted", "frechet_floor"] + 3 * by_gen.loc["shifted", "frechet_floor_sd"]
    shifted = effects[effects.generator == "shifted"]
    assert (shifted.smd > 0.6).all()  # every feature moved by one SD


def test_plot_colours_come_from_the_report_palette_and_stay_distinct():
    from reports.palette import regime_colors
    from reports.realism_plots import _colors

    colors = _colors(["real", "hu", "accuracy", "auc", "some_new_generator"])
    report = regime_colors(["real", "hu", "difftumor", "accuracy", "auc", "some_new_generator"])
    assert colors["real"] == report["real"] and colors["hu"] == report["hu"]  # same as the grid report's
    assert len(set(colors.values())) == len(colors)
