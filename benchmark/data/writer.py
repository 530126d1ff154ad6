"""Writing the canonical dataset files (dataset.json, cases.csv) shared by phantom and importers."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Iterable

from benchmark.data.layout import CASE_COLUMNS, LABELS
from benchmark.io import write_json_atomic, write_text_atomic


def write_dataset_json(root: Path, *, name: str, organ: str, spacing, source_format: str,
                       num_cases: int, seed: int | None = None, **extra: Any) -> None:
    """Write ``root/dataset.json`` (see docs/contracts.md) atomically."""
    meta: dict[str, Any] = {
        "name": name, "organ": organ, "labels": dict(LABELS),
        "spacing": [float(s) for s in spacing], "source_format": source_format,
        "num_cases": int(num_cases),
    }
    if seed is not None:
        meta["seed"] = int(seed)
    meta.update(extra)
    write_json_atomic(Path(root) / "dataset.json", meta)


def write_cases_csv(root: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write ``root/cases.csv`` with the canonical columns (extra keys are kept at the end).

    ``age`` None -> empty cell, ``sex`` None -> empty cell, ``has_tumor`` as 0/1.
    """
    rows = list(rows)
    extra = sorted({k for row in rows for k in row} - set(CASE_COLUMNS))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CASE_COLUMNS + extra, lineterminator="\n")
    writer.writeheader()
    for row in sorted(rows, key=lambda r: str(r["case_id"])):
        clean = {k: ("" if row.get(k) is None else row.get(k)) for k in CASE_COLUMNS + extra}
        clean["has_tumor"] = int(bool(row["has_tumor"]))
        if isinstance(clean["age"], float) and clean["age"].is_integer():
            clean["age"] = int(clean["age"])  # pandas reads ages with gaps as floats
        writer.writerow(clean)
    write_text_atomic(Path(root) / "cases.csv", buffer.getvalue())

