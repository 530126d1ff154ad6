"""Case and folder evaluation: organ/tumor DSC and NSD, lesion detection, summary.json.

Conventions are listed in ``benchmark.metrics``. Predictions are
``<pred_dir>/<case_id>.nii.gz`` with labels 0/1/2 on the grid of the case's reference
``labels.nii.gz``; the NSD spacing is the reference file's voxel size (native spacing).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.errors import InputError
from benchmark.eval_summary import summarize
from benchmark.lesions import DEFAULT_MIN_VOXELS, detect_lesions
from benchmark.surface import bounding_box, surface_dice
from models.overlap import dice
from tumorbench_common.cohorts import sex_or_none

NSD_TOLERANCE_MM = 2.0


def evaluate_case(pred_labels: np.ndarray, ref_labels: np.ndarray, spacing, organ_postprocess: bool = False,
                  tolerance_mm: float = NSD_TOLERANCE_MM, min_voxels: int = DEFAULT_MIN_VOXELS) -> dict[str, Any]:
    """Organ and tumor DSC/NSD plus lesion detection of one case.

    Args:
        pred_labels: int array [X, Y, Z] with 0/1/2, the prediction.
        ref_labels: int array [X, Y, Z] with 0/1/2, the reference.
        spacing: voxel size (mm) along the 3 axes.
        organ_postprocess: clean the prediction first with the one organ post-processing
            (`models.postprocess.postprocess`), the reference organ as the target organ mask.
            The grid runner post-processes at prediction time instead (same function).
        tolerance_mm: NSD tolerance (mm).
        min_voxels: smallest lesion (voxels) counted, see ``benchmark.lesions``.

    Returns:
        {"has_tumor", "pred_has_tumor", "organ_dsc", "organ_nsd", "tumor_dsc", "tumor_nsd",
         "lesions", "false_positives"}; centroids are in full-volume voxel coordinates.
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
    found = detect_lesions(pred_tumor, ref_tumor, spacing, min_voxels=min_voxels)
    origin = np.array([s.start for s in box], dtype=float)
    for record in found["lesions"] + found["false_positives"]:
        record["centroid_vox"] = [float(c) for c in np.asarray(record["centroid_vox"]) + origin]
    return {
        "has_tumor": bool(ref_tumor.any()),
        "pred_has_tumor": found["n_pred_components"] > 0,
        "organ_dsc": dice(pred_organ, ref_organ),
        "organ_nsd": surface_dice(pred_organ, ref_organ, spacing, tolerance_mm),
        "tumor_dsc": dice(pred_tumor, ref_tumor),
        "tumor_nsd": surface_dice(pred_tumor, ref_tumor, spacing, tolerance_mm),
        "lesions": found["lesions"],
        "false_positives": found["false_positives"],
    }


def _load_labels(path: Path, what: str) -> tuple[np.ndarray, tuple[float, float, float]]:
    """uint8 label array [X, Y, Z] and voxel size (mm) of a 0/1/2 label NIfTI.

    Reads the stored integer type directly (``benchmark.io.load_nifti`` would first expand
    the volume to float64, 8x the memory), with the same clear errors.
    """
    import nibabel as nib

    if not path.is_file():
        raise InputError(f"{path}: {what} not found")
    try:
        image = nib.load(str(path))
        data = np.asanyarray(image.dataobj)
    except Exception as exc:  # nibabel raises many types (ImageFileError, EOFError, zlib.error...)
        raise InputError(f"{path}: cannot read {what} ({type(exc).__name__}: {exc})") from exc
    if data.ndim != 3:
        raise InputError(f"{path}: {what} must be 3D, got shape {data.shape}")
    labels = data.astype(np.uint8)
    if data.size and (data.min() < 0 or data.max() > 2 or not np.array_equal(labels, data)):
        raise InputError(f"{path}: {what} must contain only labels 0/1/2, got values {np.unique(data)[:10]}")
    spacing = tuple(float(z) for z in image.header.get_zooms()[:3])
    return labels, spacing  # type: ignore[return-value]


def _case_info(dataset, case_id: str) -> dict[str, Any]:
    row = dataset.cases.loc[case_id]
    age = row["age"]
    sex = row["sex"]
    return {
        "age": None if age is None or (isinstance(age, float) and math.isnan(age)) or age == "" else int(age),
        "sex": sex_or_none(sex),
    }


def _evaluate_file(pred_path: Path, ref_path: Path, organ_postprocess: bool, tolerance_mm: float,
                   min_voxels: int) -> dict[str, Any]:
    ref, spacing = _load_labels(ref_path, "reference labels")
    pred, _ = _load_labels(pred_path, "prediction")
    if pred.shape != ref.shape:
        raise InputError(f"{pred_path}: prediction has shape {pred.shape}, expected the reference grid "
                         f"{ref.shape} of {ref_path}")
    return evaluate_case(pred, ref, spacing, organ_postprocess, tolerance_mm, min_voxels)


def evaluate_folder(pred_dir, dataset, case_ids: list[str] | None = None, out=None, progress: bool = True,
                    organ_postprocess: bool = False, tolerance_mm: float = NSD_TOLERANCE_MM,
                    min_voxels: int = DEFAULT_MIN_VOXELS, workers: int = 1) -> dict[str, Any]:
    """Evaluate ``<pred_dir>/<case_id>.nii.gz`` against a canonical dataset; write summary.json.

    Args:
        pred_dir: folder of predictions (uint8 0/1/2 on each case's grid).
        dataset: ``benchmark.data.Dataset`` or the path of a canonical dataset.
        case_ids: cases to evaluate; None = every case in cases.csv.
        out: where to write: a ``.json`` file path, or a folder (gets ``summary.json``);
            None = ``<pred_dir>/summary.json``.
        progress: show a tqdm bar over cases (stderr).
        organ_postprocess, tolerance_mm, min_voxels: see ``evaluate_case``.
        workers: processes evaluating cases in parallel (1 = in this process).

    Returns:
        The summary dict (schema in docs/contracts.md), also written atomically to ``out``.

    Raises:
        InputError: unknown case id, missing/unreadable prediction (names the file), wrong grid.
    """
    from tqdm.auto import tqdm

    from benchmark.data import Dataset
    from benchmark.io import write_json_atomic

    dataset = dataset if isinstance(dataset, Dataset) else Dataset.open(dataset)
    pred_dir = Path(pred_dir)
    case_ids = dataset.case_ids() if case_ids is None else [str(c) for c in case_ids]
    _check_inputs(pred_dir, dataset, case_ids)
    jobs = [(pred_dir / f"{c}.nii.gz", dataset.labels_path(c), organ_postprocess, tolerance_mm, min_voxels)
            for c in case_ids]
    bar = {"total": len(jobs), "desc": "evaluate", "unit": "case", "disable": not progress}
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(tqdm(pool.map(_evaluate_file, *zip(*jobs)), **bar))
    else:
        results = [_evaluate_file(*job) for job in tqdm(jobs, **bar)]
    records = [{"case_id": c, **_case_info(dataset, c), **r} for c, r in zip(case_ids, results)]
    summary = summarize(records)
    json.dumps(summary, allow_nan=False)  # fails loudly if a NaN slipped through
    write_json_atomic(_summary_path(pred_dir, out), summary)
    return summary


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
