"""Unit tests of the report building blocks (no MLflow store needed)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from reports.palette import PALETTE, fmt_ci, fmt_p, fmt_pct, fmt_range, fmt_ratio, regime_colors, sort_regimes
from reports.paper import load_paper_results
from reports.provenance import grid_axes
from reports.qualitative import best_slice, disagreement
from reports.bootstrap import paired_difference, rank_stability
from reports.stats import holm, holm_by_family, mean_sd, wilcoxon_signed_rank, wilson_ci
from reports.table_model import Column, ReportTable


def test_paper_lookup_maps_our_metric_names():
    paper = load_paper_results()
    assert paper.get(4, "unet", "tumor_dsc", "liver", "real", 0) == 62.3
    assert paper.get(4, "unet", "tumor_nsd", "liver", "real", "average") == 63.7
    assert paper.get(7, "unet", "tumor_dsc", "kidney", "difftumor", 0) == 84.2
    assert paper.early_sensitivity("nnunet", "liver", "pancreas", "hu") == 56.3
    assert paper.early_sensitivity("unet", "liver", "pancreas", "hu") is None  # not published
    assert paper.get(5, "unet", "tumor_dsc", "pancreas", "hu", 0) is None


def test_formatting_like_the_paper():
    assert fmt_pct(62.349) == "62.3" and fmt_pct(None) == "—" and fmt_pct(float("nan")) == "—"
    assert fmt_p(0.0004) == "<0.001" and fmt_p(0.0312) == "0.031"
    assert fmt_ci((-1.24, 3.0)) == "[-1.2, +3.0]"
    assert sort_regimes({"difftumor", "real", "x", "hu"}) == ["real", "hu", "difftumor", "x"]
    assert fmt_range((4.56, 69.94)) == "[4.6, 69.9]" and fmt_ratio((3.0, 4)) == "3/4" and fmt_ratio((1.5, 2)) == "1.5/2"


def test_regime_colors_any_number_of_regimes():
    """Colours come from the position in the report's regime list: distinct, stable, no name lookup."""
    names = ["real", "hu", "difftumor"] + [f"gen{i:02d}" for i in range(9)]
    colors = regime_colors(names)
    assert list(colors) == names and len(set(colors.values())) == len(names) == 12 <= len(PALETTE)
    assert regime_colors(["real", "hu", "difftumor"]) == {k: colors[k] for k in ("real", "hu", "difftumor")}
    assert regime_colors(["difftumor", "cellular"])["difftumor"] == colors["difftumor"]  # paper colours never move
    assert regime_colors(["cellular", "my_method"]) == regime_colors(["my_method", "cellular"])
    assert len(set(regime_colors([f"g{i}" for i in range(30)]).values())) == len(PALETTE)  # cycles, no error


def _luminance(hex_color: str) -> float:
    channels = [int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_wcag_contrast_of_palette_and_text():
    """Regime colours >= 3:1 on white (graphics), the report's text colours >= 4.5:1 (AA)."""
    from pathlib import Path

    import reports

    assert min(_contrast(c, "#ffffff") for c in PALETTE) >= 3.0
    templates = Path(reports.__file__).parent / "templates"  # the report's CSS is shared with the scorecards
    css = "".join((templates / name).read_text() for name in ("report.html.j2", "_style.css.j2"))
    pairs = [("#5f6673", "#ffffff"), ("#4a5263", "#fafbfc"), ("#5b3f8c", "#f3eefb"), ("#0b57d0", "#eef1f6"),
             ("#7a4b00", "#fff6e0"), ("#3d4452", "#fafbfc"), ("#c7cede", "#1d2330")]
    for fg, bg in pairs:
        assert fg in css.lower() and _contrast(fg, bg) >= 4.5, (fg, bg)
    assert "#a3a9b5" not in css  # the old low-contrast grey for missing values


def test_mean_sd_sample_sd():
    mean, sd = mean_sd([60.0, 70.0, None, 80.0])
    assert mean == 70.0 and sd == pytest.approx(10.0)
    assert math.isnan(mean_sd([5.0])[1]) and all(math.isnan(v) for v in mean_sd([]))


def test_paired_difference_matches_hand_computation():
    a = np.array([50.0, 60.0, 70.0, 40.0, 55.0])
    b = np.array([58.0, 61.0, 79.0, 48.0, 54.0])
    cmp = paired_difference(a, b, np.random.default_rng(0), n_boot=500)
    assert cmp.n == 5 and cmp.mean_diff == pytest.approx((8 + 1 + 9 + 8 - 1) / 5)
    # diffs 8, 1, 9, 8, -1: Pratt ranks (no zeros) 3.5, 1.5, 5, 3.5, 1.5; T- = 1.5 -> P(T- <= 1.5) = 3/32
    assert cmp.p_value == pytest.approx(6 / 32) and cmp.test == "exact"
    assert cmp.ci[0] <= cmp.mean_diff <= cmp.ci[1]
    again = paired_difference(a, b, np.random.default_rng(0), n_boot=500)
    assert again.ci == cmp.ci  # seeded


def test_wilcoxon_exact_p_values_by_hand():
    """Exact sign-flip p-values (Pratt): 4 zeros + 4 equal positive diffs -> 2/2^4; diffs 1..5 and -6:
    W- = 6, subsets of {1..6} with rank sum <= 6: 14 of 64; five pairs one way: the 2/32 floor."""
    assert wilcoxon_signed_rank([0, 0, 0, 0, 10, 10, 10, 10]).p_value == pytest.approx(0.125)
    assert wilcoxon_signed_rank([1.0, 2, 3, 4, 5, -6]).p_value == pytest.approx(28 / 64)
    assert wilcoxon_signed_rank(np.arange(1.0, 6.0)).p_value == pytest.approx(2 / 32)


def test_holm_on_a_known_vector():
    """p = (0.01, 0.04, 0.03, 0.005): sorted x (4, 3, 2, 1) = 0.02, 0.03, 0.06, 0.04 -> monotone 0.06."""
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    adjusted = holm([0.5, math.nan, 0.01])  # NaN is not part of the family (m = 2)
    assert adjusted[0] == pytest.approx(0.5) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([]) == []


def test_wilson_interval_by_hand():
    """8/10: centre (0.8 + z²/20)/(1 + z²/10), half-width z·sqrt(0.016 + z²/400)/(1 + z²/10)."""
    z = 1.959963984540054
    denom = 1 + z * z / 10
    centre, half = (0.8 + z * z / 20) / denom, z * math.sqrt(0.016 + z * z / 400) / denom
    assert wilson_ci(8, 10) == pytest.approx((centre - half, centre + half))
    assert wilson_ci(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)  # textbook value
    assert wilson_ci(0, 4)[0] == 0.0 and wilson_ci(4, 4)[1] == 1.0
    # the interval contains k/n for every k (rounding alone put 10/10 at 0.9999999999999999 and 0/3
    # at 5.6e-17, which crashed the Fig 10 error bars with "yerr must not contain negative values")
    assert all(wilson_ci(k, n)[0] <= k / n <= wilson_ci(k, n)[1] for n in range(1, 60) for k in range(n + 1))
    assert all(math.isnan(v) for v in wilson_ci(0, 0))


def test_rank_stability_counts_bootstrap_winners():
    rng = np.random.default_rng(0)
    clear = np.column_stack([np.full(20, 50.0), np.full(20, 60.0)]) + rng.normal(0, 1, (20, 2))
    ranks = rank_stability(clear, ["a", "b"], np.random.default_rng(0), n_boot=500)
    assert ranks.ranks == [2, 1] and ranks.p_first == [0.0, 1.0] and ranks.rank_interval == [(2, 2), (1, 1)]
    tied = np.column_stack([np.arange(10.0), np.arange(10.0)[::-1]])  # equal means, paired resampling
    ranks = rank_stability(tied, ["a", "b"], np.random.default_rng(0), n_boot=2000)
    assert ranks.ranks == [1, 1] and 0.35 < ranks.p_first[0] < 0.65 and ranks.rank_interval[0] == (1, 2)


def test_stats_undefined_cases_are_nan():
    assert math.isnan(wilcoxon_signed_rank([0.0, 0.0]).p_value)
    assert all(math.isnan(v) for v in paired_difference([1.0], [4.0], np.random.default_rng(0)).ci)
    assert paired_difference(np.zeros((1, 0)), np.zeros((1, 0)), np.random.default_rng(0)).n == 0


def test_table_csv_latex_and_missing():
    table = ReportTable("t", "T & title", "cap", [Column("Organ", "key", "text"), Column("ours"),
                                                 Column("paper", "pub"), Column("CI", "stat", "ci")],
                        rows=[["liver_1", 62.345, 62.3, (-1.0, 2.0)], ["pancreas", None, None, None]])
    assert table.formatted() == [["liver_1", "62.3", "62.3", "[-1.0, +2.0]"], ["pancreas", "—", "—", "—"]]
    lines = table.csv_text().splitlines()
    assert lines[0] == "Organ,ours,paper,CI_lo,CI_hi" and lines[1] == "liver_1,62.345,62.3,-1.0,2.0"
    assert lines[2] == "pancreas,,,,"
    tex = table.latex_text()
    assert r"liver\_1 & 62.3 & \textit{62.3}" in tex and "---" in tex
    assert table.sort_keys()[1] == ["pancreas", "", "", ""]


def test_grid_axes_from_toml_shapes():
    assert grid_axes({"grid": {"organs": ["liver"], "folds": 3, "regime": "hu"}}) == \
        {"organs": ["liver"], "folds": [0, 1, 2], "regimes": ["hu"]}
    assert grid_axes({"backbones": ["unet", "nnunet"]}) == {"backbones": ["unet", "nnunet"]}
    assert grid_axes({"datasets": {"liver": "a", "kidney": "b"}})["organs"] == ["liver", "kidney"]


def test_best_slice_prefers_largest_gt_cross_section():
    gt = np.zeros((8, 8, 6), np.uint8)
    gt[2:4, 2:4, 1] = 2
    gt[1:6, 1:6, 4] = 2
    pred = np.zeros_like(gt)
    pred[:, :, 2] = 2
    assert best_slice(gt, [pred]) == 4
    assert best_slice(np.ones_like(gt), [pred]) == 2  # no GT tumor: the predictions' largest tumor


def test_disagreement_ranks_detection_splits_highest():
    hit = {"tumor_dsc": 0.8, "lesions": [{"detected": True}], "false_positives": []}
    miss = {"tumor_dsc": 0.0, "lesions": [{"detected": False}], "false_positives": []}
    close = {"tumor_dsc": 0.7, "lesions": [{"detected": True}], "false_positives": []}
    assert disagreement({"a": hit, "b": miss}) == pytest.approx(2.8)
    assert disagreement({"a": hit, "b": close}) == pytest.approx(0.1)
    assert disagreement({"a": hit}) == 0.0


def test_paired_table_every_pair_any_regime_names_seeds_averaged():
    """3 regimes (one a plug-in name) x 2 organs x 2 metrics -> 12 comparisons, Holm within organ x
    metric (4 families of 3); a case's two seeds are averaged before pairing (no pseudo-replication)."""
    import pandas as pd

    from reports.inference import paired_table
    from reports.records import CASE_COLUMNS

    rng = np.random.default_rng(0)
    rows = []
    for organ in ("liver", "pancreas"):
        for regime, shift, seeds in (("real", 0.0, (0,)), ("hu", 0.05, (0,)), ("my_generator", 0.1, (0, 1))):
            for i in range(8):
                for seed in seeds:
                    dsc = 0.5 + shift + 0.01 * i + (0.2 if seed else 0.0) + rng.normal(0, 0.01)
                    rows.append({"case_id": f"{organ}{i}", "fold": i % 2, "organ": organ, "backbone": "unet",
                                 "regime": regime, "seed": seed, "source_organ": organ, "model_organ": organ,
                                 "has_tumor": True, "tumor_dsc": dsc, "tumor_nsd": dsc})
    frame = pd.DataFrame(rows, columns=CASE_COLUMNS)
    table = paired_table(frame, seed=0, n_boot=200)
    assert len(table.rows) == 12
    assert {(r[3], r[4]) for r in table.rows} == {("real", "hu"), ("real", "my_generator"), ("hu", "my_generator")}
    assert [r[11] for r in table.rows[:3]] == ["liver · DSC"] * 3
    assert [r[12] for r in table.rows] == pytest.approx(holm_by_family([r[9] for r in table.rows],
                                                                       [r[11] for r in table.rows]))
    assert table.rows[0][12] == pytest.approx(holm([r[9] for r in table.rows[:3]])[0])
    row = next(r for r in table.rows if r[:5] == ["liver", "unet", "DSC", "real", "my_generator"])
    mine = frame[(frame.organ == "liver") & (frame.regime == "my_generator")].groupby("case_id").tumor_dsc.mean()
    real = frame[(frame.organ == "liver") & (frame.regime == "real")].set_index("case_id").tumor_dsc
    assert row[7] == pytest.approx(100 * (mine - real).mean()) and row[13] == 8 and row[14] == 2
    assert row[15] == "1/2" and "Holm families (" in " ".join(table.notes) and "liver · DSC: 3 tests" in " ".join(table.notes)
