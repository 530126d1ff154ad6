"""Matplotlib (Agg) figures: detection by size (Fig 10), demographics (Fig 14), training curves.

Figures are small multiples (one PNG per organ × backbone) that the HTML lays out in a responsive
grid; every figure takes its regime colours from ``reports.palette.regime_colors`` of the whole grid,
so a regime has one colour in every section. PNGs are written atomically by ``save_figure``."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reports.loader import GridData
from reports.palette import backbone_label, regime_colors, regime_label, sort_regimes


@dataclass(frozen=True)
class Figure:
    path: Path  # PNG file inside the report folder
    title: str
    caption: str


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    from tumorbench_common.io import save_figure_atomic

    save_figure_atomic(fig, path, dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return path


N_BAND, Y_TOP = 104.0, 128.0  # n labels start 4 points above the 100 % line; the axis ends at Y_TOP


def _grouped_bars(ax, labels, series: dict[str, list], colors: dict[str, str], ylabel: str,
                  errors: dict[str, list] | None = None, counts: dict[str, list] | None = None):
    """Bars per regime (series key) for each x label, optional (low, high) error bars and n on top.

    A missing value is a small dash, never a zero-height bar that reads as 0 %.
    """
    regimes = list(series)
    width = 0.8 / max(len(regimes), 1)
    x = np.arange(len(labels))
    for i, regime in enumerate(regimes):
        vals = np.array([np.nan if v is None else v for v in series[regime]], dtype=float)
        pos = x - 0.4 + width * (i + 0.5)
        ax.bar(pos, np.nan_to_num(vals), width, color=colors[regime], label=regime_label(regime))
        bounds = (errors or {}).get(regime, [None] * len(labels))
        for p, v, ci, n in zip(pos, vals, bounds, (counts or {}).get(regime, [None] * len(labels))):
            if np.isnan(v):
                ax.text(p, 1.5, "—", ha="center", va="bottom", fontsize=7, color="#555555")
                continue
            if ci is not None:
                ax.errorbar(p, v, yerr=[[max(v - ci[0], 0.0)], [max(ci[1] - v, 0.0)]], fmt="none", ecolor="#222222", elinewidth=0.8,
                            capsize=1.5)
            if n is not None:  # in a band above 100 %, where no bar or whisker reaches
                ax.text(p, N_BAND, f"n={n}", ha="center", va="bottom", fontsize=6, rotation=90)
    ax.set_xticks(x, labels)
    ax.set_ylim(0, Y_TOP)
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)


def _panel(path: Path, title: str, caption: str, draw, n_axes: int = 1, width: float = 5.2) -> Figure:
    """One small-multiple PNG (``n_axes`` side by side), drawn by ``draw(axes)``, legend in the first."""
    plt = _plt()
    fig, axes = plt.subplots(1, n_axes, figsize=(width * n_axes, 3.7), squeeze=False)
    draw(axes[0])
    handles, labels = axes[0][0].get_legend_handles_labels()
    # below the axes: inside them it covered the n labels of the first group
    fig.legend(handles, labels, loc="lower center", fontsize=7, ncol=max(len(labels), 1), frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return Figure(save_figure(fig, path), title, caption)


def _stat_series(stats: dict, regimes, labels):
    """Sensitivity values, CIs and n per regime from ``proportion`` dicts keyed [regime][label]."""
    value = {r: [stats[r][k]["value"] for k in labels] for r in regimes}
    ci = {r: [stats[r][k]["ci"] for k in labels] for r in regimes}
    n = {r: [stats[r][k]["n"] or None for k in labels] for r in regimes}
    return value, ci, n


def detection_figures(data: dict, out_dir: Path, colors: dict[str, str]) -> list[Figure]:
    """Fig 10 small multiples: one PNG per organ x backbone, bars per regime per radius bin + all stages."""
    from reports.detection import ALL_STAGES
    from tumorbench_common.cohorts import SIZE_BIN_NAMES

    labels = [*SIZE_BIN_NAMES, ALL_STAGES]
    figures = []
    for organ, backbone in sorted({k[:2] for k in data}):
        regimes = sort_regimes(r for o, b, r in data if (o, b) == (organ, backbone))
        value, ci, n = _stat_series({r: data[(organ, backbone, r)] for r in regimes}, regimes, labels)

        def draw(axes, value=value, ci=ci, n=n):
            _grouped_bars(axes[0], labels, value, colors, "tumor-wise sensitivity (%)", ci, n)
            axes[0].set_xlabel("tumor radius (mm); all = every stage")

        figures.append(_panel(out_dir / f"fig10_{organ}_{backbone}.png", f"{organ} · {backbone_label(backbone)}",
                              "Tumor-wise sensitivity per radius bin and over all stages, pooled over test folds; "
                              "whiskers = 95% interval clustered by patient (Wilson on n/deff), n = reference lesions.", draw))
    return figures


def demographics_figures(data: dict, out_dir: Path, colors: dict[str, str]) -> list[Figure]:
    """Fig 14 small multiples: one PNG per organ x backbone, sensitivity and DSC per age group / sex."""
    figures = []
    for organ, backbone in sorted({k[:2] for k in data}):
        regimes = sort_regimes({k[2] for k in data if k[:2] == (organ, backbone)})
        groups = list(dict.fromkeys(k[3] for k in data if k[:2] == (organ, backbone)))
        labels = [g.split(" ", 1)[1] for g in groups]
        cell = {r: {g: data.get((organ, backbone, r, g)) for g in groups} for r in regimes}
        stats = {r: {g: (c["sens"] if c else {"value": None, "ci": None, "n": None}) for g, c in cell[r].items()}
                 for r in regimes}
        value, ci, n = _stat_series(stats, regimes, groups)
        dsc = {r: [c["dsc"] if c else None for c in cell[r].values()] for r in regimes}
        n_cases = {r: [c["n"] if c else None for c in cell[r].values()] for r in regimes}

        def draw(axes, value=value, ci=ci, n=n, dsc=dsc, n_cases=n_cases, labels=labels):
            _grouped_bars(axes[0], labels, value, colors, "tumor-wise sensitivity (%)", ci, n)
            _grouped_bars(axes[1], labels, dsc, colors, "tumor DSC (%)", None, n_cases)
            for ax in axes:
                ax.set_xlabel("age group (years) / sex")

        figures.append(_panel(out_dir / f"fig14_{organ}_{backbone}.png", f"{organ} · {backbone_label(backbone)}",
                              "Left: tumor-wise sensitivity (95% interval clustered by patient, n = lesions); right: mean per-case "
                              "tumor DSC (n = tumor cases); per age group and sex, pooled over test folds.",
                              draw, n_axes=2, width=4.6))
    return figures


def _panel_grid(n_rows: int, n_cols: int, width: float = 4.2, height: float = 3.0):
    fig, axes = _plt().subplots(n_rows, n_cols, figsize=(width * n_cols, height * n_rows), squeeze=False)
    return fig, axes


def training_curves(grid: GridData, out_dir: Path) -> list[Figure]:
    """One figure per organ: rows = backbone x (train loss, val tumor DSC), columns = folds."""
    figures = []
    for organ in grid.values("organ"):
        backbones = sorted({c.backbone for c in grid.cells.values() if c.organ == organ})
        folds = sorted({c.fold for c in grid.cells.values() if c.organ == organ})
        fig, axes = _panel_grid(2 * len(backbones), len(folds), width=3.4, height=2.4)
        for i, backbone in enumerate(backbones):
            for j, fold in enumerate(folds):
                for k, (metric, ylabel) in enumerate((("train_loss", "train loss"), ("val_tumor_dsc", "val tumor DSC (%)"))):
                    ax = axes[2 * i + k][j]
                    _curve_panel(ax, grid, organ, backbone, fold, metric)
                    ax.set_title(f"{backbone_label(backbone)} · fold {fold}", fontsize=8)
                    ax.set_ylabel(ylabel, fontsize=8)
                    ax.set_xlabel("epoch", fontsize=8)
        handles, labels = axes[0][0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=8, bbox_to_anchor=(0.5, 1.03))
        fig.tight_layout()
        path = save_figure(fig, out_dir / f"curves_{organ}.png")
        figures.append(Figure(path, f"Training curves — {organ}", "Per-epoch training loss and validation "
                              "tumor DSC from the MLflow metric history (step = epoch), one line per regime."))
    return figures


def _curve_panel(ax, grid: GridData, organ, backbone, fold, metric):
    drew = False
    colors = regime_colors(grid.values("regime"))
    for regime in sort_regimes(grid.values("regime")):
        cell = grid.cells.get((organ, backbone, regime, fold))
        hist = grid.history(cell, metric) if cell else []
        if hist:
            steps, values = zip(*hist)
            scale = 100.0 if metric == "val_tumor_dsc" else 1.0
            ax.plot(steps, np.array(values) * scale, color=colors[regime], label=regime_label(regime),
                    marker="o" if len(steps) < 15 else None, markersize=3)
            drew = True
    if not drew:
        ax.text(0.5, 0.5, "no history", ha="center", va="center", transform=ax.transAxes, color="grey")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
