"""The realism scores' null: size-matched noise floor, permutation p-values, independence of generators."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from reports import realism_null as null
from reports import realism_stats as stats
from reports.realism_analysis import NullSettings, cross_organ, realism_scores


def _frechet(a, b):
    return null.frechet_scores(a, b, n_components=3)


def test_floor_uses_the_comparisons_sample_size_on_both_sides():
    sizes = []

    def statistic(a, b):
        sizes.append((len(a), len(b)))
        return {"s": 0.0}

    rng = np.random.default_rng(0)
    out = null.matched_floor(rng.normal(size=(31, 2)), rng.normal(size=(40, 2)), statistic, 4,
                             np.random.default_rng(1), np.random.default_rng(2))
    assert out["n_matched"] == 15 and sizes == [(15, 15)] * 8  # 4 repeats x (score, floor)
    row = realism_scores(rng.normal(size=(50, 3)), pd.DataFrame({"organ": "liver", "source": ["real"] * 30 + ["g"] * 20}),
                         ["a", "b", "c"], NullSettings(n_perm=0, n_repeats=2)).__getitem__(0).iloc[0]
    assert row.n_matched == 15 and row.n_real == 30 and row.n_other == 20


def test_a_perfect_generator_is_not_scored_better_than_the_floor():
    """Generator = the real distribution: averaged over seeds, its matched distance is not below the
    floor (the old half-vs-full design put it ~25% below)."""
    diffs = {"frechet": [], "frechet_pca": []}
    for seed in range(12):
        rng = np.random.default_rng(seed)
        real, perfect = rng.normal(size=(30, 20)), rng.normal(size=(30, 20))
        out = null.matched_floor(real, perfect, _frechet, 10, np.random.default_rng([seed, 1]),
                                 np.random.default_rng([seed, 2]))
        for name in diffs:
            diffs[name].append((out[f"{name}_matched"] - out[f"{name}_floor"]) / out[f"{name}_floor"])
    for name, values in diffs.items():
        values = np.asarray(values)
        assert values.mean() > -2.5 * values.std(ddof=1) / np.sqrt(len(values)), (name, values.mean())
        assert abs(values.mean()) < 0.1, name


def test_adding_a_generator_does_not_change_another_generators_score():
    rng = np.random.default_rng(3)
    cols = [f"original_shape_f{j}" for j in range(6)]
    real, a, b = rng.normal(size=(24, 6)), rng.normal(size=(24, 6)) + 0.3, rng.normal(size=(24, 6)) * 3
    c = rng.normal(size=(24, 6)) * 5 + 4  # a wide generator would move pooled scalers / PCA axes
    b[:, 2] = np.nan  # b's extraction fails for one feature: must not drop it for a
    b[:, 4] = 7.0

    def table(parts):
        frames = [pd.DataFrame(x, columns=cols).assign(source=name, organ="liver") for name, x in parts]
        return pd.concat(frames, ignore_index=True)

    def scores(parts):
        tab = table(parts)
        x, names, keep = stats.clean_features(tab, cols, reference=(tab.source == "real").to_numpy())
        return realism_scores(x, tab[keep].reset_index(drop=True), names, NullSettings(n_perm=9, n_repeats=3))[0]

    alone = scores([("real", real), ("a", a)])
    both = scores([("real", real), ("a", a), ("b", b), ("c", c)])
    pd.testing.assert_frame_equal(alone, both[both.generator == "a"].reset_index(drop=True))
    assert (both.generator == "b").sum() == 0  # every b row had a NaN in a kept feature


def test_permutation_p_is_uniform_under_the_null_and_small_under_a_shift():
    p_null, p_shift = [], []
    for seed in range(60):
        rng = np.random.default_rng(seed)
        a, b = rng.normal(size=(15, 4)), rng.normal(size=(15, 4))
        p_null.append(null.permutation_test(a, b, _frechet, 39, rng)["frechet"][1])
        p_shift.append(null.permutation_test(a, b + 1.5, _frechet, 39, rng)["frechet"][1])
    p_null = np.asarray(p_null)
    assert sps.kstest(p_null, "uniform").pvalue > 0.01
    assert 0.0 < (p_null <= 0.1).mean() < 0.25
    assert np.mean(p_shift) < 0.05 and min(p_null) >= 1 / 40
    a = np.random.default_rng(0).normal(size=(10, 3))  # no permutation beats a huge shift: p = 1 / (1 + 9), never 0
    assert null.permutation_test(a, a + 100, _frechet, 9, np.random.default_rng(1))["frechet"][1] == pytest.approx(0.1)


def test_size_matched_subset_has_equal_size_histograms():
    rng = np.random.default_rng(4)
    sizes = np.r_[rng.uniform(2, 6, 30), rng.uniform(4, 10, 30)]
    groups = np.repeat(["liver", "kidney"], 30)
    idx = stats.size_matched(sizes, groups, 2.0, rng)
    hist = {g: np.bincount((sizes[idx][groups[idx] == g] // 2).astype(int), minlength=6) for g in ("liver", "kidney")}
    assert len(idx) > 0 and (hist["liver"] == hist["kidney"]).all()


def test_cross_organ_size_matching_removes_a_pure_size_effect(tmp_path):
    """Features = size + noise, organs differ only in size: 'all' looks organ-specific, the
    size-matched row does not."""
    rng = np.random.default_rng(5)
    n = 60
    radius = np.r_[rng.uniform(2, 7, n), rng.uniform(5, 10, n), rng.uniform(12, 20, n), rng.uniform(14, 24, n)]
    organ = np.tile(np.repeat(["liver", "kidney"], n), 2)
    x = np.c_[radius + rng.normal(0, 0.5, 4 * n), rng.normal(size=(4 * n, 3))]
    frame = pd.DataFrame({"source": "real", "organ": organ, "radius_mm": radius, "early": radius <= 10})
    table = cross_organ(x, frame, NullSettings(n_perm=19, seed=0), tmp_path, "pca").set_index(["group", "variant"])
    early = table.loc["early (r<=10mm)"]
    assert early.loc["all", "accuracy"] > 0.7 and early.loc["all", "p_value"] == pytest.approx(0.05)
    matched = early.iloc[1]
    assert matched["accuracy"] < 0.7 and matched["p_value"] > 0.05 and matched["n"] < early.loc["all", "n"]
    assert (tmp_path / "cross_organ_embedding.png").is_file()
