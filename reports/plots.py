"""Matplotlib (Agg) figures: detection by size (Fig 10), demographics (Fig 14), training curves.

Every figure uses the regime colours from ``reports.palette`` and is written as PNG by
``save_figure`` (atomic)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reports.loader import GridData
from reports.palette import backbone_label, regime_color, regime_label, sort_regimes


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
    from benchmark.io import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return path


def _grouped_bars(ax, labels, series: dict[str, list], counts: dict[str, list] | None, ylabel: str):
    """Bars per regime (series key) for each x label; missing values are left out, counts on top."""
    regimes = sort_regimes(series)
    width = 0.8 / max(len(regimes), 1)
    x = np.arange(len(labels))
    for i, regime in enumerate(regimes):
        vals = np.array([np.nan if v is None else v for v in series[regime]], dtype=float)
        pos = x - 0.4 + width * (i + 0.5)
        ax.bar(pos, np.nan_to_num(vals), width, color=regime_color(regime), label=regime_label(regime))
        for p, v, n in zip(pos, vals, (counts or {}).get(regime, [None] * len(labels))):
            if np.isnan(v):  # no value: a small upright dash, never a zero-height bar that reads as 0 %
                ax.text(p, 1.5, "—" if n is None else f"n={n}", ha="center", va="bottom", fontsize=6, color="grey",
                        rotation=0 if n is None else 90)
            elif n is not None:
                ax.text(p, v + 1.5, f"n={n}", ha="center", va="bottom", fontsize=6, rotation=90)
    ax.set_xticks(x, labels)
    ax.set_ylim(0, 118)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)


def _panel_grid(n_rows: int, n_cols: int, width: float = 4.2, height: float = 3.0):
    plt = _plt()
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(width * n_cols, height * n_rows), squeeze=False)
    return fig, axes


def _bar_panel(ax, labels, series: dict[str, list], counts: dict[str, list], ylabel: str, xlabel: str,
               title: str) -> None:
    _grouped_bars(ax, labels, series, counts, ylabel)
    ax.set_xlabel(xlabel)
    ax.set_title(title)


def _finish_panels(fig, axes, out: Path, title: str, caption: str) -> Figure:
    """One legend (first panel), tight layout, saved PNG as a report Figure."""
    axes[0][0].legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    return Figure(save_figure(fig, out), title, caption)


def _layout(keys) -> tuple[list[str], list[str]]:
    """Sorted organs (rows) and backbones (columns) present in ``keys`` = (organ, backbone, ...)."""
    return sorted({k[0] for k in keys}), sorted({k[1] for k in keys})


def detection_figure(data: dict, out: Path) -> Figure | None:
    """Sensitivity by radius bin: rows = organs, columns = backbones, bars per regime, n on top."""
    from reports.detection import SIZE_BINS

    if not data:
        return None
    organs, backbones = _layout(data)
    fig, axes = _panel_grid(len(organs), len(backbones))
    for (i, organ), (j, backbone) in ((o, b) for o in enumerate(organs) for b in enumerate(backbones)):
        ax, regimes = axes[i][j], [r for o, b, r in data if (o, b) == (organ, backbone)]
        if not regimes:
            ax.axis("off")
            continue
        series = {r: [data[(organ, backbone, r)][k]["sensitivity"] for k in SIZE_BINS] for r in regimes}
        counts = {r: [data[(organ, backbone, r)][k]["n"] for k in SIZE_BINS] for r in regimes}
        _bar_panel(ax, list(SIZE_BINS), series, counts, "lesion sensitivity (%)", "tumor radius (mm)",
                   f"{organ} · {backbone_label(backbone)}")
    return _finish_panels(fig, axes, out, "Detection by tumor size",
                          "Lesion-wise sensitivity per equivalent-sphere radius bin, pooled over folds; "
                          "n = ground-truth lesions in the bin, — = no value.")


def demographics_figure(data: dict, out: Path) -> Figure | None:
    """DSC and sensitivity per age/sex group: rows = organ x metric, columns = backbones."""
    if not data:
        return None
    organs, backbones = _layout(data)
    group_names = list(dict.fromkeys(g for *_, g in data))
    labels = [g.replace("age ", "").replace("sex ", "") for g in group_names]
    metrics = (("dsc", "tumor DSC (%)"), ("sens", "patient sensitivity (%)"))
    fig, axes = _panel_grid(2 * len(organs), len(backbones), width=4.8)
    for (i, organ), (j, backbone) in ((o, b) for o in enumerate(organs) for b in enumerate(backbones)):
        regimes = sort_regimes({r for o, b, r, _ in data if (o, b) == (organ, backbone)})
        for k, (metric, ylabel) in enumerate(metrics):
            ax = axes[2 * i + k][j]
            if not regimes:
                ax.axis("off")
                continue
            cell = lambda r, g: data.get((organ, backbone, r, g), {})
            _bar_panel(ax, labels, {r: [cell(r, g).get(metric) for g in group_names] for r in regimes},
                       {r: [cell(r, g).get("n") for g in group_names] for r in regimes}, ylabel,
                       "age group (years) / sex", f"{organ} · {backbone_label(backbone)}")
    return _finish_panels(fig, axes, out, "Performance by age and sex",
                          "Per organ: tumor DSC (upper row) and patient-level sensitivity (lower row) per age "
                          "group and sex, mean over folds; n = patients in the group.")


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
    for regime in sort_regimes(grid.values("regime")):
        cell = grid.cells.get((organ, backbone, regime, fold))
        hist = grid.history(cell, metric) if cell else []
        if hist:
            steps, values = zip(*hist)
            scale = 100.0 if metric == "val_tumor_dsc" else 1.0
            ax.plot(steps, np.array(values) * scale, color=regime_color(regime), label=regime_label(regime),
                    marker="o" if len(steps) < 15 else None, markersize=3)
            drew = True
    if not drew:
        ax.text(0.5, 0.5, "no history", ha="center", va="center", transform=ax.transAxes, color="grey")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
