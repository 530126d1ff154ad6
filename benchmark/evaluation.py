"""Scoring: organ/tumor DSC and NSD, lesion detection and the patient call of one case, and the
one engine that scores (prediction, reference) file pairs into summary.json + CSVs.

Conventions are listed in ``benchmark.metrics`` and docs/metrics.md. Every case is scored on its
reference's own grid and spacing (``benchmark.label_files``): a cell's references are each
case's native-grid labels (`Dataset.native_labels_path`), its predictions (on the dataset's
resampled grid) are mapped back to them (nearest); `tumorbench evaluate` compares two folders
(`benchmark.evaluate_dirs`). Sizes and thresholds are in mm / mm³, never voxels.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.errors import InputError
from benchmark.eval_summary import summarize
from benchmark.label_files import check_same_grid, load_labels, map_to_grid, read_geometry
from benchmark.lesions import DEFAULT_MIN_LESION_MM3, detect_lesions
from benchmark.patient_detection import PATIENT_THRESHOLD_MM3, patient_call
from benchmark.surface import bounding_box, surface_dice
from models.overlap import dice
from tumorbench_common.cohorts import sex_or_none

NSD_TOLERANCE_MM = 2.0


def evaluate_case(pred_labels: np.ndarray, ref_labels: np.ndarray, spacing, organ_postprocess: bool = False,
                  tolerance_mm: float = NSD_TOLERANCE_MM, min_lesion_mm3: float = DEFAULT_MIN_LESION_MM3,
                  patient_threshold_mm3: float = PATIENT_THRESHOLD_MM3) -> dict[str, Any]:
    """Organ and tumor DSC/NSD plus lesion detection of one case.

    Args:
        pred_labels: int array [X, Y, Z] with 0/1/2, the prediction.
        ref_labels: int array [X, Y, Z] with 0/1/2, the reference.
        spacing: voxel size (mm) along the 3 axes.
        organ_postprocess: clean the prediction first with the one organ post-processing
            (`models.postprocess.postprocess`), the reference organ as the target organ mask.
            The grid runner post-processes at prediction time instead (same function).
        tolerance_mm: NSD tolerance (mm).
        min_lesion_mm3: smallest lesion (mm³) counted, see ``benchmark.lesions``.
        patient_threshold_mm3: the official patient-level rule's ``th``, see
            ``benchmark.patient_detection``.

    Returns:
        {"has_tumor", "pred_has_tumor" (official patient rule), "pred_tumor_eroded_mm3" (the
         volume that rule compares with the threshold), "pred_tumor_components" (kept predicted
         tumor components), "organ_dsc", "organ_nsd", "tumor_dsc", "tumor_nsd", "lesions",
         "false_positives"}; centroids are in full-volume voxel coordinates.
    """
    pred_labels, ref_labels = np.asarray(pred_labels), np.asarray(ref_labels)
    if pred_labels.shape != ref_labels.shape:
        raise ValueError(f"prediction shape {pred_labels.shape} differs from reference {ref_labels.shape}")
    box = bounding_box(pred_labels, ref_labels)  # nonzero box: all work happens inside it
    if box is None:  # both all background: one voxel keeps every helper on a non-empty array
        box = tuple(slice(0, 1) for _ in range(3))
    pred, ref = pred_labels[box], ref_labels[box]
    if organ_postprocess:
        from models.postprocess import postprocess

        pred = postprocess(pred, spacing, organ_mask=ref >= 1)
    pred_organ, ref_organ = pred >= 1, ref >= 1
    pred_tumor, ref_tumor = pred == 2, ref == 2
    found = detect_lesions(pred_tumor, ref_tumor, spacing, min_lesion_mm3=min_lesion_mm3)
    positive, eroded_mm3 = patient_call(pred_tumor, pred_organ, spacing, patient_threshold_mm3)
    origin = np.array([s.start for s in box], dtype=float)
    for record in found["lesions"] + found["false_positives"]:
        record["centroid_vox"] = [float(c) for c in np.asarray(record["centroid_vox"]) + origin]
    return {
        "has_tumor": bool(ref_tumor.any()),
        "pred_has_tumor": positive,
        "pred_tumor_eroded_mm3": eroded_mm3,
        "pred_tumor_components": found["n_pred_components"],
        "organ_dsc": dice(pred_organ, ref_organ),
        "organ_nsd": surface_dice(pred_organ, ref_organ, spacing, tolerance_mm),
        "tumor_dsc": dice(pred_tumor, ref_tumor),
        "tumor_nsd": surface_dice(pred_tumor, ref_tumor, spacing, tolerance_mm),
        "lesions": found["lesions"],
        "false_positives": found["false_positives"],
    }


@dataclass(frozen=True)
class ScoringSettings:
    """How cases are scored (``evaluate_case`` arguments); written to summary.json's ``scoring``."""

    tolerance_mm: float = NSD_TOLERANCE_MM
    min_lesion_mm3: float = DEFAULT_MIN_LESION_MM3
    patient_threshold_mm3: float = PATIENT_THRESHOLD_MM3
    organ_postprocess: bool = False


@dataclass(frozen=True)
class ScoringJob:
    """One case: its prediction, its reference and whether a prediction on another grid is mapped
    (nearest) onto the reference grid instead of being an error."""

    case_id: str
    pred_path: Path
    ref_path: Path
    resample: bool = False
    age: int | None = None
    sex: str | None = None


def score_file(job: ScoringJob, settings: ScoringSettings) -> dict[str, Any]:
    """Per-case record of one job, on the reference grid: ``evaluate_case`` output plus case_id,
    age, sex, the reference ``shape``/``spacing`` and ``resampled_from`` (the prediction's
    shape/spacing when it was mapped, else None)."""
    ref, ref_grid = load_labels(job.ref_path, "reference labels")
    pred, pred_grid = load_labels(job.pred_path, "prediction")
    resampled_from = None
    if not pred_grid.matches(ref_grid):
        if not job.resample:
            check_same_grid(job.pred_path, pred_grid, job.ref_path, ref_grid)
        pred, resampled_from = map_to_grid(pred, pred_grid, ref_grid), pred_grid.as_record()
    result = evaluate_case(pred, ref, ref_grid.spacing, settings.organ_postprocess, settings.tolerance_mm,
                           settings.min_lesion_mm3, settings.patient_threshold_mm3)
    return {"case_id": job.case_id, "age": job.age, "sex": job.sex, **result, **ref_grid.as_record(),
            "resampled_from": resampled_from}


def score_jobs(jobs: list[ScoringJob], out: Path, settings: ScoringSettings = ScoringSettings(),
               progress: bool = True, workers: int = 1, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score every job, then write ``out`` (summary.json) and per_case.csv / per_lesion.csv beside it.

    Nothing is written when a case fails (bad file, grid mismatch without ``resample``).

    Returns:
        The summary dict (docs/contracts.md) with ``scoring``: the settings, ``grid`` and how many
        predictions were resampled; ``extra`` keys are added at the top level.
    """
    from tqdm.auto import tqdm

    from benchmark.result_files import write_results

    bar = {"total": len(jobs), "desc": "evaluate", "unit": "case", "disable": not progress}
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers) as pool:
            records = list(tqdm(pool.map(score_file, jobs, [settings] * len(jobs)), **bar))
    else:
        records = [score_file(job, settings) for job in tqdm(jobs, **bar)]
    summary = summarize(records)
    resampled = sum(r["resampled_from"] is not None for r in records)
    summary["scoring"] = {**asdict(settings), "grid": "reference labels' own grid and spacing",
                          "resampled_predictions": resampled,
                          "patient_rule": "tumor AND organ, 1 mm nearest, 3x3x3 erosion, positive if > "
                                          f"{settings.patient_threshold_mm3:g} mm3 remain"}
    summary.update(extra or {})
    json.dumps(summary, allow_nan=False)  # fails loudly if a NaN slipped through
    write_results(Path(out), summary)
    return summary


def _case_info(dataset, case_id: str) -> dict[str, Any]:
    row = dataset.cases.loc[case_id]
    age = row["age"]
    return {"age": None if age is None or (isinstance(age, float) and math.isnan(age)) or age == "" else int(age),
            "sex": sex_or_none(row["sex"])}


def evaluate_folder(pred_dir, dataset, case_ids: list[str] | None = None, out=None, progress: bool = True,
                    workers: int = 1, **settings) -> dict[str, Any]:
    """Score a cell's ``<pred_dir>/<case_id>.nii.gz`` against a canonical dataset's native labels.

    Predictions lie on the dataset's grid (``labels.nii.gz``; checked from the headers before any
    work) and are mapped back (nearest) to each case's native grid
    (`Dataset.native_labels_path`), where they are scored: the same engine as `tumorbench evaluate`.

    Args:
        pred_dir: folder of predictions (uint8 0/1/2 on each case's dataset grid).
        dataset: ``benchmark.data.Dataset`` or the path of a canonical dataset.
        case_ids: cases to evaluate; None = every case in cases.csv.
        out: a ``.json`` file path, or a folder (gets ``summary.json``); None =
            ``<pred_dir>/summary.json``. per_case.csv and per_lesion.csv are written beside it.
        progress: tqdm bar over cases (stderr). workers: processes scoring cases in parallel.
        settings: `ScoringSettings` fields (tolerance_mm, min_lesion_mm3, patient_threshold_mm3,
            organ_postprocess).

    Returns:
        The summary dict (schema in docs/contracts.md), also written atomically to ``out``.

    Raises:
        InputError: unknown case id, missing/unreadable prediction (names the file), wrong grid.
    """
    from benchmark.data import Dataset

    dataset = dataset if isinstance(dataset, Dataset) else Dataset.open(dataset)
    pred_dir = Path(pred_dir)
    case_ids = dataset.case_ids() if case_ids is None else [str(c) for c in case_ids]
    _check_inputs(pred_dir, dataset, case_ids)
    jobs = []
    for case_id in case_ids:
        pred_path, grid_path = pred_dir / f"{case_id}.nii.gz", dataset.labels_path(case_id)
        check_same_grid(pred_path, read_geometry(pred_path, "prediction"), grid_path,
                        read_geometry(grid_path, "reference labels"))
        jobs.append(ScoringJob(case_id, pred_path, dataset.native_labels_path(case_id), resample=True,
                               **_case_info(dataset, case_id)))
    return score_jobs(jobs, _summary_path(pred_dir, out), ScoringSettings(**settings), progress, workers)


def _check_inputs(pred_dir: Path, dataset, case_ids: list[str]) -> None:
    """Fail before any work: unknown cases, missing prediction files."""
    if not pred_dir.is_dir():
        raise InputError(f"{pred_dir}: prediction folder not found")
    unknown = [c for c in case_ids if c not in dataset.cases.index]
    if unknown:
        raise InputError(f"{dataset.root / 'cases.csv'}: cases {unknown[:5]} not listed")
    missing = [pred_dir / f"{c}.nii.gz" for c in case_ids if not (pred_dir / f"{c}.nii.gz").is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise InputError(f"{missing[0]}: prediction not found{more}; expected <pred_dir>/<case_id>.nii.gz")


def _summary_path(pred_dir: Path, out) -> Path:
    if out is None:
        return pred_dir / "summary.json"
    out = Path(out)
    return out if out.suffix == ".json" else out / "summary.json"
