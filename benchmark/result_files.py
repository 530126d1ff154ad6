"""The result files of a scored folder: summary.json plus per_case.csv and per_lesion.csv beside it.

A cell (`benchmark.cell_pipeline`) and `tumorbench evaluate` write the same three files through
`benchmark.evaluation.score_jobs`. The CSVs are flat views of ``summary["metric_per_case"]``
(one row per case / per reference lesion) for spreadsheets and scripts; summary.json stays the
file the report reads.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from benchmark.io import write_json_atomic, write_text_atomic
from tumorbench_common.cohorts import EARLY_RADIUS_MM

CASE_COLUMNS = ["case_id", "age", "sex", "has_tumor", "pred_has_tumor", "pred_tumor_eroded_mm3",
                "pred_tumor_components", "organ_dsc", "organ_nsd", "tumor_dsc", "tumor_nsd", "n_lesions", "n_hit",
                "n_false_positives", "shape", "spacing", "resampled_from"]
LESION_COLUMNS = ["case_id", "age", "sex", "lesion", "volume_mm3", "radius_mm", "size_bin", "early", "detected",
                  "centroid_vox"]


def case_rows(summary: dict[str, Any]) -> tuple[list[dict], list[dict]]:
    """(per-case rows, per-lesion rows) of a summary, columns as CASE_COLUMNS / LESION_COLUMNS."""
    cases, lesions = [], []
    for case in summary.get("metric_per_case", []):
        found = case.get("lesions") or []
        cases.append({**{k: case.get(k) for k in CASE_COLUMNS}, "n_lesions": len(found),
                      "n_hit": sum(bool(les["detected"]) for les in found),
                      "n_false_positives": len(case.get("false_positives") or [])})
        base = {k: case.get(k) for k in ("case_id", "age", "sex")}
        lesions += [{**base, "lesion": i, **{k: les.get(k) for k in LESION_COLUMNS[4:]},
                     "early": les["radius_mm"] <= EARLY_RADIUS_MM} for i, les in enumerate(found)]
    return cases, lesions


def _csv_text(rows: list[dict], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:  # lists/dicts as JSON, None as an empty cell
        writer.writerow({k: "" if row[k] is None else json.dumps(row[k]) if isinstance(row[k], (list, dict))
                         else row[k] for k in columns})
    return buffer.getvalue()


def write_results(summary_path: Path, summary: dict[str, Any]) -> list[Path]:
    """Write summary.json at ``summary_path`` and per_case.csv / per_lesion.csv in its folder,
    each atomically. Returns the three paths."""
    cases, lesions = case_rows(summary)
    folder = summary_path.parent
    paths = [summary_path, folder / "per_case.csv", folder / "per_lesion.csv"]
    write_json_atomic(paths[0], summary)
    write_text_atomic(paths[1], _csv_text(cases, CASE_COLUMNS))
    write_text_atomic(paths[2], _csv_text(lesions, LESION_COLUMNS))
    return paths
