"""Downstream value: real vs the generator's regime in an existing grid, read from MLflow (no training).

The comparison is the report's (reports.inference.paired_table): per-case tumor DSC / NSD of test
cases with a tumor, pooled over folds (seeds averaged per case), Δ = generator regime − real on the
cases both evaluated, bootstrap 95 % CI, the report's paired test and its Holm adjustment (family
named in each row's ``holm_family``). Cells missing from the grid are named, never trained
here: run the grid (`tumorbench run GRID`) first; the runner reuses finished cells.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark.errors import InputError

REAL = "real"
# the report table's column names -> the card's keys (other columns keep their names)
PAIRED_KEYS = {"Organ": "organ", "Backbone": "backbone", "Metric": "metric", "A": "a", "B": "b", "mean A": "mean_a",
               "mean B": "mean_b", "Δ B−A": "delta", "95% CI of Δ": "ci", "Wilcoxon p": "p_wilcoxon",
               "Holm p": "p_holm", "Holm family": "holm_family", "n cases": "n_cases", "folds": "folds"}


def grid_experiment(grid: str) -> str:
    """Experiment of ``grid``: a grid TOML file (its [mlflow] experiment, else its name) or a name."""
    path = Path(grid)
    if path.suffix == ".toml":
        if not path.is_file():
            raise InputError(f"--downstream {grid}: grid file not found")
        from benchmark.grid import load_grid

        from benchmark.tracking import grid_experiment

        return grid_experiment(load_grid(path))
    return grid


def load_per_case(grid: str, tracking_uri: str | None) -> tuple[str, Any]:
    """(experiment name, the report's per-case table) of the grid's finished cell runs."""
    from reports.loader import load_grid
    from reports.records import collect

    data = load_grid(tracking_uri, grid_experiment(grid))
    per_case, _ = collect(data)
    return data.experiment_name, per_case


def downstream_section(per_case: Any, experiment: str, generator: str, organ: str, seed: int = 0,
                       n_boot: int = 2000) -> dict[str, Any]:
    """The paired rows real vs ``generator`` for ``organ`` (every backbone and metric), or why none."""
    from reports.inference import paired_table

    table = paired_table(per_case, seed, n_boot)
    # the report orders regimes real first (reports.palette.sort_regimes): Δ = generator − real
    keys = [PAIRED_KEYS.get(c.name, c.name) for c in table.columns]
    rows = [row for row in (dict(zip(keys, r)) for r in table.rows)
            if row["organ"] == organ and (row["a"], row["b"]) == (REAL, generator)]
    for row in rows:
        row["ci"] = [None if v is None or v != v else v for v in row["ci"]]
    out: dict[str, Any] = {"experiment": experiment, "rows": rows, "notes": table.notes}
    if not rows:
        from reports.palette import sort_regimes

        have = sort_regimes(set(per_case.loc[per_case.organ == organ, "regime"])) if len(per_case) else []
        out["missing"] = (f"experiment {experiment!r} has no finished {organ} cells with test cases for both "
                          f"'{REAL}' and '{generator}' (regimes found: {', '.join(have) or 'none'}); add the "
                          "regime to the grid and run `tumorbench run GRID` (finished cells are reused)")
    return out
