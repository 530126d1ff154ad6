"""Training-set sizes per regime beside the paper's, and generators whose training data are unknown.

Read from each cell run's MLflow metrics (``n_train_tumor_cases``, ``n_train_healthy_cases``) and
its ``cases_used.json`` (MLflow artifact, else ``<results_dir>/cases_used.json``); never from the
benchmark package. Lines for the report header (`reports.run_scope.describe_run`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from tumorbench_common.mlflow_tags import RESULTS_DIR, read_tag

# CTs in the official DiffTumor fold-0 training lists (cross_eval/<organ>_aug_data_fold/
# real_tumor_train_0.txt; ../shared/reference/notes/difftumor_official.md, section 3.1): real-tumor
# scans and healthy scans. The real regime trains on the tumor scans, hu/difftumor on both, a
# cross-organ synthetic cell on the healthy scans only.
PAPER_TRAIN_CASES = {"liver": (95, 116), "pancreas": (96, 104), "kidney": (96, 120)}


def paper_n(organ: str, regime: str, cross_organ: bool) -> tuple[int, int] | None:
    """(tumor CTs, healthy CTs) the paper trains one cell of this kind on, or None if unknown."""
    if organ not in PAPER_TRAIN_CASES:
        return None
    tumor, healthy = PAPER_TRAIN_CASES[organ]
    if regime == "real":
        return tumor, 0
    return (0, healthy) if cross_organ else (tumor, healthy)


def _n_text(tumor: Iterable[int], healthy: Iterable[int]) -> str:
    def span(values: list[int]) -> str:
        return str(values[0]) if min(values) == max(values) else f"{min(values)}-{max(values)}"

    tumor, healthy = sorted(tumor), sorted(healthy)
    return f"{span(tumor)} tumor + {span(healthy)} healthy"


def training_size_line(runs: Iterable[Any]) -> str | None:
    """One sentence: n training CTs per organ and regime (range over folds) and the paper's n."""
    groups: dict[tuple[str, str, str], list[Any]] = {}
    for run in runs:
        if "n_train_tumor_cases" in getattr(run, "metrics", {}):
            groups.setdefault((run.organ, run.regime, run.source_organ), []).append(run)
    if not groups:
        return None
    parts = []
    for (organ, regime, source), members in sorted(groups.items()):
        ours = _n_text((int(r.metrics["n_train_tumor_cases"]) for r in members),
                       (int(r.metrics.get("n_train_healthy_cases", 0)) for r in members))
        paper = paper_n(organ, regime, source != organ)
        name = f"{organ} {regime}" + (f"←{source}" if source != organ else "")
        parts.append(f"{name} {ours}" + (f" (paper {paper[0]} + {paper[1]})" if paper else ""))
    selections = sorted({r.params.get("selection", "final") for m in groups.values() for r in m})
    rule = {"final": "final checkpoint", "inner_val": "checkpoint selected on an inner split"}
    return ("Training CTs per cell, ours (over folds) vs the paper's official lists: " + "; ".join(parts)
            + f" ({', '.join(rule.get(s, s) for s in selections)}).")


def _cases_used(grid, run) -> dict | None:
    fetch = getattr(grid, "artifact_path", None)
    local = fetch(run.run_id, "cases_used.json") if fetch and hasattr(run, "run_id") else None
    if local is None and read_tag(run.tags, RESULTS_DIR):
        candidate = Path(read_tag(run.tags, RESULTS_DIR)) / "cases_used.json"
        local = candidate if candidate.is_file() else None
    try:
        return json.loads(Path(local).read_text()) if local else None
    except (OSError, ValueError):
        return None


def _unknown_weights(run, used: dict | None) -> list[str] | None:
    """sha256 prefixes of the cell's generator weights with unknown training data; None if known."""
    if not run.params.get("generator.checkpoint"):
        return None  # no learned weights (real regime, model-based generators)
    generator = (used or {}).get("generator")
    if not generator:
        return ["?"]  # a cell run before generators were recorded
    unknown = [r for r in generator.get("models", []) if r.get("published") and not r.get("trained_on")]
    return [str(r.get("sha256") or "?")[:12] for r in unknown] or None


def unknown_generator_line(grid) -> str | None:
    """One sentence when some cells' generator weights do not say what they were trained on."""
    runs = list(getattr(grid, "runs", {}).values()) or list(grid.cells.values())
    unknown = {id(run): shas for run in runs
               if (shas := _unknown_weights(run, _cases_used(grid, run))) is not None}
    if not unknown:
        return None
    shas = sorted({s for found in unknown.values() for s in found if s != "?"})
    return (f"The generator weights of {len(unknown)} cell(s) do not record what they were trained on"
            + (f" (sha256 {', '.join(shas)})" if shas else "")
            + ": their test cases may be among the generator's training cases.")
