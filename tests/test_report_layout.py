"""Report tables and figures a reader can use: fold tables without one-fold summaries and with Table 7's
published values, Tables 4-6 in order, Table 3 saying what is missing, figure layout (no empty bands,
n labels clear of error bars)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reports.loader import Cell, GridData
from reports.paper import load_paper_results
from reports.records import LESION_COLUMNS


def _grid(cells: dict[tuple, float]) -> GridData:
    """A GridData of finished cells (organ, backbone, regime, fold) -> tumor DSC = NSD (fraction)."""
    runs = {}
    for i, (key, value) in enumerate(cells.items()):
        organ, backbone, regime, fold = key
        tags = {"organ": organ, "backbone": backbone, "regime": regime, "fold": str(fold)}
        runs[key] = Cell(f"r{i}", "0", f"r{i}", "FINISHED", 0, 1, tags, {}, {"tumor_dsc": value, "tumor_nsd": value})
    return GridData("sqlite://", "0", "unit", runs, [])


def _row(table, **match) -> dict:
    head = [c.name for c in table.columns]
    for row in table.rows:
        named = dict(zip(head, row))
        if all(named[k] == v for k, v in match.items()):
            return named
    raise AssertionError(match)


def test_fold_table_one_fold_has_no_mean_and_shows_table7_hu():
    """One fold: no mean/sd/n columns next to the paper's 5-fold mean; the hu row's published fold-0
    values come from Table 7 (U-Net fold 0: DSC 69.7, NSD 70.9 for liver), with a note saying so."""
    from reports.tables import fold_table

    grid = _grid({("liver", "unet", regime, 0): 0.5 for regime in ("real", "hu", "difftumor")})
    table = fold_table(grid, load_paper_results(), list(grid.cells), "liver")
    names = [c.name for c in table.columns]
    assert "mean" not in names and "sd" not in names and "n" not in names
    assert _row(table, Regime="hu", Metric="DSC")["paper fold 0"] == 69.7
    assert _row(table, Regime="hu", Metric="NSD")["paper fold 0"] == 70.9
    assert _row(table, Regime="real", Metric="DSC")["paper fold 0"] == 62.3  # Table 4 itself
    assert _row(table, Regime="hu", Metric="DSC")["paper mean (5 folds)"] is None
    assert any("Table 7" in note and "U-Net hu fold 0" in note for note in table.notes)


def test_fold_table_mean_only_over_two_or_more_folds():
    from reports.tables import fold_table

    grid = _grid({("pancreas", "unet", "real", 0): 0.4, ("pancreas", "unet", "real", 1): 0.6,
                  ("pancreas", "unet", "hu", 0): 0.5})
    expected = [("pancreas", "unet", r, f) for r in ("real", "hu") for f in (0, 1)]
    table = fold_table(grid, load_paper_results(), expected, "pancreas")
    real, hu = _row(table, Regime="real", Metric="DSC"), _row(table, Regime="hu", Metric="DSC")
    assert real["mean"] == pytest.approx(50.0) and real["n"] == 2
    assert hu["mean"] is None and hu["sd"] is None and hu["n"] == 1
    assert hu["paper fold 0"] == 55.9 and hu["paper fold 1"] is None  # Table 7: U-Net fold 0 only


def test_fold_tables_in_paper_order():
    from reports.tables import axis

    grid = _grid({(organ, "unet", "real", 0): 0.5 for organ in ("kidney", "liver", "pancreas")})
    organs = axis(grid, list(grid.cells), 0)
    assert organs == ["liver", "pancreas", "kidney"]
    assert [load_paper_results().fold_table(o) for o in organs] == [4, 5, 6]


def _early_lesions(pairs: list[tuple[str, str, str]]) -> pd.DataFrame:
    rows = [{"case_id": f"{target}{i}", "fold": 0, "organ": target, "backbone": "nnunet", "regime": regime,
             "seed": 0, "source_organ": source, "model_organ": source if regime == "real" else target, "lesion": 0,
             "radius_mm": 6.0, "early": True, "size_bin": "5-10", "hit": i % 2 == 0}
            for source, target, regime in pairs for i in range(4)]
    return pd.DataFrame(rows, columns=LESION_COLUMNS)


def test_table3_without_cross_organ_cells_says_what_is_missing():
    from reports.tables import NO_CROSS_ORGAN, table3

    grid = _grid({("liver", "nnunet", "real", 0): 0.5})
    diagonal = _early_lesions([("liver", "liver", "real"), ("pancreas", "pancreas", "real")])
    table = table3(grid, diagonal, load_paper_results(), list(grid.cells), "nnunet", n_boot=1000)
    assert NO_CROSS_ORGAN in table.notes and "cross_organ = true" in NO_CROSS_ORGAN
    crossed = _early_lesions([("liver", "liver", "real"), ("liver", "pancreas", "real")])
    assert NO_CROSS_ORGAN not in table3(grid, crossed, load_paper_results(), list(grid.cells), "nnunet",
                                        n_boot=1000).notes


def _synthetic_rows(shape):
    rows = []
    for k in range(3):
        mask = np.zeros(shape, bool)
        mask[10:20, 10:20] = True
        entry = {"models": {"unet·real": {"has_tumor": True, "tumor_dsc": 0.5, "lesions": [{"detected": True}]}},
                 "cells": {"unet·real": None}}
        rows.append({"case_id": f"c{k}", "entry": entry, "z": 3, "spacing": (0.8, 0.8, 5.0), "gt_tumor": mask,
                     "ct2d": np.random.default_rng(k).normal(40, 30, shape), "organ": mask,
                     "pred_tumor": {"unet·real": mask}})
    return rows


@pytest.mark.parametrize("shape", [(160, 80), (80, 160), (100, 100)])
def test_qualitative_rows_fit_the_slice_aspect(shape):
    """Wide, tall and square slices: between one row's image and the next only the outcome line
    (< 0.35 in), never an empty band (the fixed 2.5 in row height left 1.35 in under wide slices)."""
    from reports.qualitative import grid_figure

    fig = grid_figure(_synthetic_rows(shape), ["unet·real"], {"real": "#0072B2"})
    fig.canvas.draw()
    height = fig.get_size_inches()[1]
    spans = []
    for ax in fig.axes[::2]:  # ground-truth column, one per row
        ax.apply_aspect()
        box = ax.get_position()
        spans.append((box.y0 * height, box.y1 * height))
    gaps = [spans[i][0] - spans[i + 1][1] for i in range(len(spans) - 1)]
    assert all(0.0 < gap < 0.35 for gap in gaps), gaps  # outer margins: cropped by bbox_inches="tight"


def test_fig14_n_labels_clear_the_error_bars():
    """Every n label is at least 4 px away from every whisker and cap (bars at 0 and 100 % with
    whiskers up to 79 and 100 %: the labels used to sit 1.5 % above the whisker top)."""
    from matplotlib.transforms import Bbox

    from reports.plots import _grouped_bars, _plt

    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 3.4), dpi=110)
    series = {"real": [0, 100, 0, 100], "difftumor": [100, 100, 100, 66.7]}
    errors = {"real": [(0, 79.3), (20.7, 100), (0, 65.8), (34.2, 100)], "difftumor": [(20.7, 100)] * 3 + [(20.8, 93.9)]}
    counts = {"real": [1, 1, 2, 2], "difftumor": [1, 1, 2, 3]}
    _grouped_bars(ax, ["<50", "50-59", "M", "F"], series, {"real": "C0", "difftumor": "C2"}, "%", errors, counts)
    fig.tight_layout()
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = [t.get_window_extent(renderer).expanded(1.0, 1.0).padded(4) for t in ax.texts if t.get_text().startswith("n=")]
    marks = []
    for container in ax.containers:
        if hasattr(container, "has_yerr"):
            _, caps, columns = container.lines
            marks += [cap.get_window_extent(renderer) for cap in caps]
            marks += [Bbox(ax.transData.transform(seg)) for col in columns for seg in col.get_segments()]
    assert len(labels) == 8 and len(marks) >= 8
    assert not [(a, b) for a in labels for b in marks if a.overlaps(b)]
    plt.close(fig)
