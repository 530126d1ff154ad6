"""The grid report's scorecard section: the newest `tumorbench scorecard` run of the grid's experiment.

A run belongs to the grid like a realism run does (reports.realism_report.grid_runs: same MLflow
experiment, same dataset fingerprints). Its artifacts (cards, leaderboard) are copied into
``<report>/scorecards/`` so the report links them from file:// like its own pages.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reports.html import Section
from reports.realism_report import grid_runs
from reports.scorecard_html import leaderboard_table

FOLDER = "scorecards"


def scorecard_section(grid: Any, out_dir: Path) -> Section | None:
    """Section linking every card of the newest scorecard run (None when the experiment has none)."""
    runs = grid_runs(grid, "scorecard")
    if not runs:
        return None
    run = runs[0]
    dest = out_dir / FOLDER
    dest.mkdir(parents=True, exist_ok=True)
    grid.client().download_artifacts(run.info.run_id, "", str(dest))
    index = dest / "scorecards.json"
    if not index.is_file():
        return Section("scorecards", "Scorecards", "Generator scorecards",
                       notes=[f"Scorecard run {run.info.run_id} has no scorecards.json artifact."])
    cards = json.loads(index.read_text())
    intro = (f"Cards of <code>tumorbench scorecard</code> run <code>runs:/{run.info.run_id}</code> on this grid's data "
             f"(fold {cards[0]['fold'] if cards else '—'} training cases): realism, fidelity, engineering"
             f"{' (quick profile)' if cards and cards[0]['settings']['quick'] else ''}. "
             f'All side by side: <a href="{FOLDER}/leaderboard.html">leaderboard</a>.')
    return Section("scorecards", "Scorecards", "Generator scorecards",
                   html=f'<p class="caption">{intro}</p>' +
                   leaderboard_table(cards, f"{FOLDER}/", "One card per generator and organ (links open the card)"))
