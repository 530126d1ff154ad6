"""Run provenance: the grid file, git commits, package versions, devices, dates and run links."""
from __future__ import annotations

import datetime as dt
import platform
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from reports.loader import GridData, RunInfo
from tumorbench_common import mlflow_tags as T

AXIS_ALIASES = {"organs": ("organs", "organ"), "backbones": ("backbones", "backbone"),
                "regimes": ("regimes", "regime"), "folds": ("folds", "fold")}
REPORT_PACKAGES = ("mlflow", "numpy", "scipy", "pandas", "matplotlib", "nibabel", "jinja2", "torch", "monai")


@dataclass(frozen=True)
class GridFile:
    """The grid.toml of one parent run: raw text and the parsed axes (None when unparsable)."""

    run: RunInfo
    text: str | None
    spec: dict[str, Any] | None


def fmt_time(ms: int | None) -> str:
    if not ms:
        return "—"
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def fmt_duration(run: RunInfo) -> str:
    if not run.start_time or not run.end_time:
        return "—"
    minutes = (run.end_time - run.start_time) / 60000
    return f"{minutes:.1f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def run_ui_url(ui_base: str, experiment_id: str, run_id: str) -> str:
    return f"{ui_base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def grid_axes(parsed: dict[str, Any]) -> dict[str, list]:
    """Find organs/backbones/regimes/folds lists anywhere in a parsed grid.toml (depth <= 2)."""
    tables = [parsed] + [v for v in parsed.values() if isinstance(v, dict)]
    axes: dict[str, list] = {}
    for axis, names in AXIS_ALIASES.items():
        for table in tables:
            value = next((table[n] for n in names if n in table), None)
            if isinstance(value, int) and axis == "folds":
                value = list(range(value))  # `folds = 5` means folds 0..4
            if isinstance(value, (str, int)):
                value = [value]
            if isinstance(value, list):
                axes[axis] = value
                break
    if "organs" not in axes and isinstance(parsed.get("datasets"), dict):
        axes["organs"] = list(parsed["datasets"])  # runner default: every [datasets] key is trained
    return axes


def read_grid_files(grid: GridData) -> list[GridFile]:
    """grid.toml of every parent run (newest first)."""
    import tomllib

    files = []
    for parent in grid.parents:
        local = grid.artifact_path(parent.run_id, "grid.toml")
        text = local.read_text() if local and local.is_file() else None
        spec = None
        if text is not None:
            try:
                spec = grid_axes(tomllib.loads(text))
            except tomllib.TOMLDecodeError:
                spec = None
        files.append(GridFile(parent, text, spec))
    return files


def version_tags(runs: list[RunInfo]) -> dict[str, list[str]]:
    """Tags/params whose key mentions a version (as logged by the runner), value -> distinct values."""
    found: dict[str, set[str]] = {}
    for run in runs:
        for key, value in {**run.params, **run.tags}.items():
            if "version" in key.lower() and not key.startswith("mlflow."):
                found.setdefault(key, set()).add(value)
    return {k: sorted(v) for k, v in sorted(found.items())}


def report_environment() -> dict[str, str]:
    """Versions of the packages on the machine that rendered the report (read, not imported)."""
    env = {"python": platform.python_version(), "platform": platform.platform()}
    for name in REPORT_PACKAGES:
        try:
            env[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            env[name] = "not installed"
    return env


def cell_rows(grid: GridData, ui_base: str) -> list[dict[str, str]]:
    """One row per finished cell run (every seed and cross-organ source cell) for the provenance table."""
    rows = []
    for key in sorted(grid.runs):
        cell = grid.runs[key]
        rows.append({"cell": cell.label, "status": cell.status, "run_id": cell.run_id,
                     "url": run_ui_url(ui_base, cell.experiment_id, cell.run_id),
                     "runs_uri": f"runs:/{cell.run_id}",
                     "git_commit": cell.tag(T.GIT_COMMIT, "—"), "device": cell.tag(T.DEVICE, "—"),
                     "preset": cell._field("preset", "—"), "cell_hash": cell.tag(T.CELL_HASH, "—"),
                     "started": fmt_time(cell.start_time),
                     "duration": fmt_duration(cell)})
    return rows


def summarize(grid: GridData, ui_base: str) -> dict[str, Any]:
    """All provenance facts the HTML template shows."""
    cells = list(grid.runs.values())
    commits = sorted({r["git_commit"] for r in cell_rows(grid, ui_base)})
    devices = sorted({c.tag(T.DEVICE, "—") for c in cells})
    starts = [c.start_time for c in cells if c.start_time]
    ends = [c.end_time for c in cells if c.end_time]
    return {"experiment": grid.experiment_name, "experiment_id": grid.experiment_id,
            "tracking_uri": grid.tracking_uri,
            "experiment_url": f"{ui_base.rstrip('/')}/#/experiments/{grid.experiment_id}",
            "commits": commits, "devices": devices,
            "first_start": fmt_time(min(starts) if starts else None),
            "last_end": fmt_time(max(ends) if ends else None),
            "versions": version_tags(grid.parents + cells), "environment": report_environment(),
            "cells": cell_rows(grid, ui_base),
            "parents": [{"name": p.name, "run_id": p.run_id, "status": p.status,
                         "url": run_ui_url(ui_base, p.experiment_id, p.run_id),
                         "started": fmt_time(p.start_time), "duration": fmt_duration(p)}
                        for p in grid.parents]}
