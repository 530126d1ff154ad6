"""Small multiples of a scorecard's fidelity section: one ECDF panel per quantity, real vs generator.

Read from the card's ``fidelity.csv`` (one row per tumor, ``source`` = real | generator, ``case``)
and its test rows (scorecard.json); colours from the report palette (reports.palette).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from reports.palette import fmt_p, regime_label
from reports.realism_plots import _colors, _pyplot, _save

PANEL_IN = (2.6, 1.9)
COLUMNS = 4


def _values(frame: Any, source: str, quantity: str, per_case: bool) -> np.ndarray:
    rows = frame[frame["source"] == source]
    if quantity not in rows:
        return np.zeros(0)
    series = rows.groupby("case")[quantity].first() if per_case else rows[quantity]
    values = series.to_numpy(float)
    return values[np.isfinite(values)]


def _ecdf(ax, values: np.ndarray, color: str, label: str) -> None:
    if len(values):
        x = np.sort(values)
        ax.step(np.r_[x[0], x], np.r_[0.0, np.arange(1, len(x) + 1) / len(x)], where="post", color=color,
                lw=1.6, label=label)


def fidelity_figure(frame: Any, tests: Sequence[dict[str, Any]], generator: str, path: Path) -> Path:
    """ECDF panels (real vs ``generator``) for every test row, titled with Cliff's δ and Holm p."""
    plt = _pyplot()
    colors = _colors(["real", generator])
    rows = max(1, int(np.ceil(len(tests) / COLUMNS)))
    fig, axes = plt.subplots(rows, COLUMNS, figsize=(PANEL_IN[0] * COLUMNS, PANEL_IN[1] * rows), squeeze=False)
    for ax, test in zip(axes.ravel(), tests):
        per_case = test["quantity"] == "lesions_per_case"
        for source in ("real", generator):
            _ecdf(ax, _values(frame, source, test["quantity"], per_case), colors[source], regime_label(source))
        delta = test.get("cliffs_delta")
        ax.set_title(f"{test['label']}\nδ={'—' if delta is None else f'{delta:+.2f}'}, Holm p={fmt_p(test.get('p_holm'))}",
                     fontsize=7.5)
        ax.set_xlabel(test["unit"] or "value", fontsize=7)
        ax.tick_params(labelsize=6.5)
        ax.set_ylim(0, 1.02)
    for ax in axes.ravel()[len(tests):]:
        ax.axis("off")
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=7.5, frameon=False,
                   bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return _save(fig, path)
