"""Integrity check of a canonical dataset: one clear message per problem, never a traceback.

``check_dataset(path)`` returns the problems (empty list = valid); ``ensure_valid(path)``
raises InputError listing them. Each message starts with the offending file.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from benchmark.data.layout import LABELS, Dataset
from benchmark.data.nifti import read_nifti_array
from benchmark.data.splits import splits_problems
from benchmark.errors import InputError
from benchmark.io import write_json_atomic

AFFINE_TOL_MM = 1e-3
SPACING_TOL = 1e-3  # relative


def check_dataset(path: str | Path, progress: bool = False) -> list[str]:
    """All problems of the dataset at ``path`` (see module docstring)."""
    from tqdm.auto import tqdm

    try:
        ds = Dataset.open(path)
    except InputError as exc:
        return [str(exc)]
    problems = _table_problems(ds)
    for case_id in tqdm(ds.case_ids(), desc="check", unit="case", disable=not progress):
        problems += check_case(ds, case_id)
    return problems + splits_problems(ds)


def ensure_valid(path: str | Path, progress: bool = False) -> None:
    """Raise InputError listing every problem of the dataset (no-op when valid)."""
    problems = check_dataset(path, progress=progress)
    if problems:
        listing = "\n  - ".join(problems)
        raise InputError(f"{Path(path)}: {len(problems)} dataset problem(s):\n  - {listing}")


CHECK_STAMP = ".tumorbench_check.json"


def ensure_valid_cached(path: str | Path, progress: bool = False) -> None:
    """``ensure_valid`` run before training, skipped when nothing changed since the last pass.

    The stamp holds the dataset fingerprint and every case file's size and mtime, so an edited
    or replaced image is checked again; a read-only dataset is simply checked every time.
    """
    root = Path(path)
    signature = _file_signature(root)
    stamp = root / CHECK_STAMP
    try:
        if json.loads(stamp.read_text()) == signature:
            return
    except (OSError, ValueError):
        pass
    ensure_valid(root, progress=progress)
    try:
        write_json_atomic(stamp, signature)
    except OSError:
        pass


def _file_signature(root: Path) -> dict[str, object]:
    ds = Dataset.open(root)
    files = sorted(p for case_id in ds.case_ids() for p in ds.case_dir(case_id).glob("*.nii*"))
    return {"fingerprint": ds.fingerprint(),
            "files": [[str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns] for p in files]}


def _table_problems(ds: Dataset) -> list[str]:
    csv = ds.root / "cases.csv"
    problems = []
    ids = ds.case_ids()
    for dup in sorted({c for c in ids if ids.count(c) > 1}):
        problems.append(f"{csv}: case {dup} is listed more than once")
    for case_id, value in zip(ids, ds.cases["has_tumor"]):
        if str(value) not in ("0", "1", "0.0", "1.0"):
            problems.append(f"{csv}: case {case_id}: has_tumor is {value!r}, expected 0 or 1")
    meta_path = ds.root / "dataset.json"
    if ds.meta.get("labels", LABELS) != LABELS:
        problems.append(f"{meta_path}: labels {ds.meta['labels']}, expected {LABELS}")
    if "num_cases" in ds.meta and ds.meta["num_cases"] != len(ids):
        problems.append(f"{meta_path}: num_cases is {ds.meta['num_cases']} but {csv} lists {len(ids)} cases")
    listed = set(ids)
    case_root = ds.root / "cases"
    if case_root.is_dir():
        for folder in sorted(p for p in case_root.iterdir() if p.is_dir() and p.name not in listed):
            problems.append(f"{folder}: case folder not listed in {csv}")
    return problems


def check_case(ds: Dataset, case_id: str) -> list[str]:
    """Problems of one case: files, grid, HU, label values and tumor/organ consistency."""
    ct_path, labels_path = ds.ct_path(case_id), ds.labels_path(case_id)
    if not ds.case_dir(case_id).is_dir():
        return [f"{ds.case_dir(case_id)}: case folder missing (case {case_id} is listed in cases.csv)"]
    problems, ct, labels = [], None, None
    try:
        ct, ct_affine, _ = read_nifti_array(ct_path, "CT image (expected HU)")
    except InputError as exc:
        problems.append(str(exc))
    try:
        labels, labels_affine, _ = read_nifti_array(labels_path, "labels file (expected uint8 0/1/2 mask)")
    except InputError as exc:
        problems.append(str(exc))
    if ct is not None:
        problems += _ct_problems(ds, ct_path, ct, ct_affine)
    if labels is None:
        return problems
    if ct is not None:
        if ct.shape != labels.shape:
            return problems + [f"{labels_path}: shape {labels.shape} differs from the CT shape {ct.shape} of {ct_path}"]
        diff = float(np.abs(ct_affine - labels_affine).max())
        if diff > AFFINE_TOL_MM:
            problems.append(f"{labels_path}: affine differs from the CT affine of {ct_path} by up to {diff:.4g} mm "
                            f"(tolerance {AFFINE_TOL_MM} mm)")
    return problems + _label_problems(ds, case_id, labels_path, labels) + _native_problems(ds, case_id)


def _native_problems(ds: Dataset, case_id: str) -> list[str]:
    """The original-grid labels a case is scored on (when import kept them): readable 0/1/2."""
    path = ds.native_labels_path(case_id)
    if path == ds.labels_path(case_id):
        return []
    try:
        native, _, _ = read_nifti_array(path, "original-grid labels (expected uint8 0/1/2 mask)")
    except InputError as exc:
        return [str(exc)]
    extra = sorted({int(v) for v in np.unique(native)} - {0, 1, 2})
    return [f"{path}: label values {extra} not allowed, expected 0/1/2"] if extra else []


def _ct_problems(ds: Dataset, path: Path, ct: np.ndarray, affine: np.ndarray) -> list[str]:
    import nibabel as nib

    problems = []
    if not (np.issubdtype(ct.dtype, np.floating) or ct.dtype == np.int16):
        problems.append(f"{path}: dtype {ct.dtype}, expected float32 or int16 HU")
    bad = int(np.size(ct) - np.count_nonzero(np.isfinite(ct))) if np.issubdtype(ct.dtype, np.floating) else 0
    if bad:
        problems.append(f"{path}: {bad} non-finite voxel(s) (NaN/inf), expected finite HU values")
    elif ct.size and float(ct.max()) - float(ct.min()) < 20.0:
        problems.append(f"{path}: values span only {float(ct.min()):.3g}..{float(ct.max()):.3g}, "
                        "expected HU (air -1000 .. bone +1000); is the CT normalised?")
    axcodes = "".join(nib.aff2axcodes(affine))
    if axcodes != "RAS":
        problems.append(f"{path}: orientation {axcodes}, expected RAS (reorient with nibabel as_closest_canonical)")
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(0))
    if not np.allclose(spacing, ds.spacing, rtol=SPACING_TOL):
        problems.append(f"{path}: voxel spacing {np.round(spacing, 4).tolist()} mm, expected the dataset "
                        f"spacing {list(ds.spacing)} from dataset.json")
    return problems


def _label_problems(ds: Dataset, case_id: str, path: Path, labels: np.ndarray) -> list[str]:
    values = np.unique(labels)
    extra = [v.item() for v in values if v not in (0, 1, 2)]
    if extra or not np.issubdtype(labels.dtype, np.integer):
        return [f"{path}: label values {extra or values.tolist()} (dtype {labels.dtype}) not allowed, "
                "expected integers in {0 background, 1 organ, 2 tumor}"]
    problems = []
    organ, tumor = labels == 1, labels == 2
    n_tumor = int(tumor.sum())
    if not organ.any():
        problems.append(f"{path}: no {ds.organ} voxels (label 1), expected the organ to be present")
    elif n_tumor:
        components, n = ndi.label(tumor)
        touching = np.unique(components[ndi.binary_dilation(organ) & tumor])
        outside = n - int(np.count_nonzero(touching))
        if outside:
            problems.append(f"{path}: {outside} of {n} tumor component(s) (label 2) neither inside nor "
                            f"touching the {ds.organ} (label 1)")
    row = ds.cases.loc[case_id]
    if row.ndim > 1:  # duplicated case id (reported by the table check): use the first row
        row = row.iloc[0]
    csv = ds.root / "cases.csv"
    if row["role"] == "healthy" and n_tumor:
        problems.append(f"{path}: {n_tumor} tumor voxel(s) but case {case_id} has role healthy in {csv}")
    try:
        listed = bool(int(float(row["has_tumor"])))
    except (TypeError, ValueError):
        return problems  # reported by the table check
    if listed != bool(n_tumor):
        problems.append(f"{csv}: case {case_id} has has_tumor={int(listed)} but {path} has {n_tumor} tumor voxel(s)")
    return problems
