"""Write a blinded Visual Turing Test: reader page + case files, and a separate answer key.

Layout of the study folder ``DIR``::

    DIR/reader/index.html        the page: served by `reader-study serve` (reports.reader_study.server),
                                 or opened from file:// as the fallback (answers in localStorage)
    DIR/reader/cases/<id>.js     one case each: int16 HU axial slices, base64
    DIR/key.csv                  the answer key (NOT inside reader/, never linked from the page)
    DIR/study.json               task, seed, number of cases (no answers)

Only ``DIR/reader/`` goes to readers (or, served, only its URL).
"""
from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

TEMPLATE = Path(__file__).with_name("template.html")
TASKS = {
    "real-vs-synthetic": {"question": "Is the tumor in this scan real or synthetic?",
                          "choices": ["real", "synthetic"], "choice_keys": ["r", "s"], "confidence": True},
    "organ": {"question": "Which organ does this early tumor come from?",
              "choices": ["liver", "pancreas", "kidney"], "choice_keys": ["l", "p", "k"], "confidence": True},
}


@dataclass(frozen=True)
class StudyCase:
    """One case before blinding.

    Attributes:
        volume: (X, Y, Z) CT in HU (RAS voxel order), the region shown to the reader.
        spacing: voxel spacing in mm.
        truth: the correct answer (``real``/``synthetic`` or an organ name).
        start_slice: axial index (along Z) shown first, e.g. the tumor centre.
        meta: anything for the key (source, organ, case id, radius...); never shown.
    """

    volume: np.ndarray
    spacing: tuple[float, float, float]
    truth: str
    start_slice: int
    meta: dict[str, Any] = field(default_factory=dict)


def axial_stack(volume: np.ndarray) -> np.ndarray:
    """(X, Y, Z) RAS volume -> (Z, rows, cols) int16 in radiological display order.

    Rows run anterior (top) to posterior, columns patient-right (screen left) to patient-left.
    """
    stack = np.transpose(np.asarray(volume), (2, 1, 0))[:, ::-1, ::-1]
    return np.clip(np.rint(stack), -1024, 3071).astype("<i2")


def case_payload(case: StudyCase) -> dict[str, Any]:
    stack = axial_stack(case.volume)
    return {"shape": list(stack.shape), "pixel_mm": [float(case.spacing[1]), float(case.spacing[0])],
            "slice_mm": float(case.spacing[2]), "start": int(np.clip(case.start_slice, 0, stack.shape[0] - 1)),
            "data": base64.b64encode(np.ascontiguousarray(stack).tobytes()).decode("ascii")}


def blind_order(n: int, seed: int) -> np.ndarray:
    """The permutation used to blind ``n`` cases (deterministic for a seed)."""
    return np.random.default_rng(seed).permutation(n)


def new_study_id() -> str:
    """A fresh random study id (64 bits from the OS, not from the seed).

    The reader page keeps answers in localStorage under ``tumorbench-reader-<study_id>``; Chromium
    gives every ``file://`` page one shared storage, so two studies made with the same seed and
    title would otherwise read (and export) each other's answers.
    """
    return secrets.token_hex(8)


def write_study(cases: Sequence[StudyCase], out_dir: str | Path, *, task: str, seed: int,
                title: str = "TumorBench reader study", extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Shuffle ``cases`` with ``seed`` and write the blinded page, case files and key.

    The caller writes into a temporary folder (atomic); this function only fills ``out_dir``.
    The same seed gives the same cases and order; the study id is new every time.

    Returns:
        The study description (also ``study.json``): study id, task, seed, case ids and
        ``extra`` (e.g. dataset fingerprints; kept out of the reader page).
    """
    import pandas as pd

    if task not in TASKS:
        raise ValueError(f"task {task!r}: expected one of {sorted(TASKS)}")
    out_dir = Path(out_dir)
    (out_dir / "reader" / "cases").mkdir(parents=True, exist_ok=True)
    order = blind_order(len(cases), seed)
    width = max(3, len(str(len(cases))))
    key_rows, ids = [], []
    for new_index, old_index in enumerate(order):
        case, case_id = cases[int(old_index)], f"case_{new_index + 1:0{width}d}"
        payload = json.dumps(case_payload(case), separators=(",", ":"))
        (out_dir / "reader" / "cases" / f"{case_id}.js").write_text(f"TB_REGISTER({json.dumps(case_id)}, {payload});\n")
        key_rows.append({"case_id": case_id, "truth": case.truth, **case.meta})
        ids.append(case_id)
    study = {"study_id": new_study_id(), "task": task, "seed": seed, "n_cases": len(cases), "cases": ids,
             "title": title, **TASKS[task]}
    page = TEMPLATE.read_text().replace("/*__TB_CONFIG__*/null", json.dumps(study))
    (out_dir / "reader" / "index.html").write_text(page)
    pd.DataFrame(key_rows).to_csv(out_dir / "key.csv", index=False)
    study.update(extra or {})
    (out_dir / "study.json").write_text(json.dumps(study, indent=2) + "\n")
    return study
