"""Matplotlib figures for the realism analysis (Agg backend, written as PNG)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from reports.palette import regime_colors
from tumorbench_common.io import save_figure_atomic


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colors(labels: Sequence[str]) -> dict[str, str]:
    """The report's one palette (reports.palette.regime_colors) for real and any generator or
    organ name: colours by position, so they are distinct within a figure and a generator keeps the
    colour it has in the grid report's other sections."""
    return regime_colors(set(labels))


def _save(fig, path: str | Path, tight: bool = True) -> Path:
    path = save_figure_atomic(fig, path, dpi=110, bbox_inches="tight" if tight else None)
    _pyplot().close(fig)
    return path


def _scatter(ax, coords: np.ndarray, labels: Sequence[str], title: str) -> None:
    labels = np.asarray(labels)
    for name, color in _colors(labels.tolist()).items():
        pts = coords[labels == name]
        ax.scatter(pts[:, 0], pts[:, 1], s=22, c=color, alpha=0.75, label=f"{name} (n={len(pts)})",
                   edgecolors="white", linewidths=0.4)
    ax.set_title(title, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), frameon=False,
              ncol=min(3, len(set(labels.tolist()))))


def plot_embedding_panels(panels: Sequence[tuple[np.ndarray, Sequence[str], str]], path: str | Path,
                          method: str = "PCA") -> Path:
    """Side-by-side embeddings, one (coords, labels, title) per panel (e.g. early vs non-early)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 4.4), squeeze=False)
    for ax, (coords, labels, title) in zip(axes[0], panels):
        if len(coords):
            _scatter(ax, coords, labels, title)
        else:
            ax.set_title(f"{title}\n(no tumors)", fontsize=10)
            ax.axis("off")
        ax.set_xlabel(f"{method} 1")
    return _save(fig, path)


def plot_feature_distributions(samples: Mapping[str, np.ndarray], features: Sequence[str],
                               path: str | Path, ncols: int = 4) -> Path:
    """Histograms of selected features per source.

    Args:
        samples: source name -> (N_source, len(features)) values, columns in ``features`` order.
        features: feature names (``original_glcm_Contrast`` ...), shown without the prefix.
    """
    plt = _pyplot()
    nrows = max(1, int(np.ceil(len(features) / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.5 * nrows), squeeze=False)
    fig.subplots_adjust(hspace=0.45, wspace=0.3, left=0.04, right=0.98, top=0.93, bottom=0.06)
    colors = _colors(list(samples))
    for j, ax in enumerate(axes.ravel()):
        if j >= len(features):
            ax.axis("off")
            continue
        pooled = np.concatenate([v[:, j] for v in samples.values()])
        bins = np.histogram_bin_edges(pooled[np.isfinite(pooled)], bins=15)
        for name, values in samples.items():
            ax.hist(values[:, j], bins=bins, alpha=0.45, color=colors[name], label=name, density=True)
        ax.set_title(features[j].removeprefix("original_"), fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, frameon=False)
    return _save(fig, path, tight=False)  # tight bbox costs seconds per 8-panel figure


def plot_proportions(table: Any, path: str | Path, title: str, value: str = "value",
                     group: str = "reader", metric: str = "metric", chance: float = 0.5) -> Path:
    """Grouped bar plot of proportions with CI whiskers (columns value, ci_low, ci_high).

    Used for reader-study scores (accuracy / sensitivity / specificity / AUC per reader or
    group); a dashed line marks ``chance`` (1 / number of answer choices).
    """
    plt = _pyplot()
    groups = list(dict.fromkeys(table[group]))
    metrics = list(dict.fromkeys(table[metric]))
    width = 0.8 / max(1, len(metrics))
    colors = _colors(metrics)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.3 * len(groups) * max(1, len(metrics)) / 2), 3.6))
    for k, name in enumerate(metrics):
        sub = table[table[metric] == name].set_index(group).reindex(groups)
        x = np.arange(len(groups)) + (k - (len(metrics) - 1) / 2) * width
        vals = sub[value].to_numpy(dtype=float)
        err = np.vstack([vals - sub["ci_low"].to_numpy(float), sub["ci_high"].to_numpy(float) - vals])
        ax.bar(x, vals, width, label=name, yerr=np.clip(np.nan_to_num(err), 0, None), capsize=3,
               color=colors[name])
    ax.axhline(chance, ls="--", c="grey", lw=1, label=f"chance {chance:.2g}")
    ax.set_xticks(np.arange(len(groups)), groups, rotation=20, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, frameon=False, ncol=len(metrics) + 1)
    return _save(fig, path)
