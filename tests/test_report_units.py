"""Unit tests of the report building blocks (no MLflow store needed)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from reports.palette import fmt_ci, fmt_p, fmt_pct, regime_color, sort_regimes
from reports.paper import load_paper_results
from reports.provenance import grid_axes
from reports.qualitative import best_slice, disagreement
from reports.stats import bootstrap_mean_ci, mean_sd, paired_comparison, wilcoxon_p
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
    assert regime_color("real") != regime_color("hu") != regime_color("difftumor")
    assert regime_color("other") == regime_color("other")


def test_mean_sd_sample_sd():
    mean, sd = mean_sd([60.0, 70.0, None, 80.0])
    assert mean == 70.0 and sd == pytest.approx(10.0)
    assert math.isnan(mean_sd([5.0])[1]) and all(math.isnan(v) for v in mean_sd([]))


def test_paired_comparison_matches_hand_computation():
    from scipy.stats import wilcoxon

    a = {"c1": 50.0, "c2": 60.0, "c3": 70.0, "c4": 40.0, "c5": 55.0, "only_a": 1.0}
    b = {"c1": 58.0, "c2": 61.0, "c3": 79.0, "c4": 48.0, "c5": 54.0, "only_b": 99.0}
    cmp = paired_comparison(a, b, np.random.default_rng(0), n_boot=500)
    assert cmp.n == 5 and cmp.mean_diff == pytest.approx((8 + 1 + 9 + 8 - 1) / 5)
    assert cmp.p_value == pytest.approx(wilcoxon([50, 60, 70, 40, 55], [58, 61, 79, 48, 54]).pvalue)
    assert -1.0 <= cmp.ci[0] <= cmp.mean_diff <= cmp.ci[1] <= 9.0
    again = paired_comparison(a, b, np.random.default_rng(0), n_boot=500)
    assert again.ci == cmp.ci  # seeded


def test_stats_undefined_cases_are_nan():
    assert math.isnan(wilcoxon_p(np.array([1.0, 2.0]), np.array([1.0, 2.0])))
    assert all(math.isnan(v) for v in bootstrap_mean_ci(np.array([3.0]), np.random.default_rng(0)))
    assert paired_comparison({"a": 1.0}, {"b": 2.0}, np.random.default_rng(0)).n == 0


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


def test_table3_reads_real_rows_from_source_models_and_synthetic_rows_from_cross_cells():
    from reports.loader import Cell, GridData
    from reports.tables import table3

    def run(organ, regime, metrics, source=None):
        tags = {"organ": organ, "backbone": "unet", "regime": regime, "fold": "0", "synth_source": source or organ}
        return Cell(f"{organ}{regime}{source}", "0", "x", "FINISHED", 0, 0, tags, {},
                    {f"xorgan_early_sensitivity_{o}": v for o, v in metrics.items()})

    main = [run("liver", "real", {"liver": 0.8, "pancreas": 0.02}), run("pancreas", "real", {"pancreas": 0.7, "liver": 0.01}),
            run("liver", "hu", {"liver": 0.85}), run("pancreas", "hu", {"pancreas": 0.75})]
    cross = run("pancreas", "hu", {"pancreas": 0.6}, source="liver")  # pancreas model, liver generator
    grid = GridData("uri", "0", "x", {c.key: c for c in main}, [], cross_cells={(*cross.key, "liver"): cross})
    table = table3(grid, load_paper_results(), [], "unet")
    names = [c.name for c in table.columns]
    rows = {(r[0], r[1]): dict(zip(names, r)) for r in table.rows}
    assert rows[("liver", "real")]["pancreas (ours)"] == pytest.approx(2.0)  # liver real model on pancreas
    assert rows[("liver", "hu")]["pancreas (ours)"] == pytest.approx(60.0)  # from the cross-organ cell
    assert rows[("liver", "hu")]["liver (ours)"] == pytest.approx(85.0)  # diagonal: the main cell
    assert rows[("pancreas", "hu")]["liver (ours)"] is None  # no liver <- pancreas cell was run
    assert rows[("pancreas", "real")]["liver (ours)"] == pytest.approx(1.0)
