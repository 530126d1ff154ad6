"""Import public CT datasets (MSD, LiTS, KiTS, AbdomenAtlas) into the canonical layout.

Every case is reoriented to RAS (``nib.as_closest_canonical``), resampled to the target
spacing (CT trilinear, labels nearest), its labels mapped to 0/1/2 and its CT stored as
int16 HU (clipped to -1024..3071). When resampling changed the grid, the labels on the original
grid are kept as ``labels_native.nii.gz``: cases are scored there (docs/metrics.md). A new dataset is written to a temp folder and renamed;
``append=True`` adds cases to an existing dataset of the same organ and spacing (e.g. MSD
labeled + AbdomenAtlas healthy) and rebuilds its splits (the old file is kept as
splits.before-append.json). Nothing is half-written when a case fails. Every CT's content
fingerprint goes to ``fingerprints.json``; a healthy CT that is the same scan as a labeled CT of
this or a neighbouring dataset is refused (`benchmark.data.healthy_pool`).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmark.data.healthy_pool import check_healthy_pool, content_fingerprint, known_scans, read_fingerprints, \
    write_fingerprints
from benchmark.data.import_sources import SourceCase, find_cases, kits_demographics
from benchmark.data.layout import NATIVE_LABELS, Dataset
from benchmark.data.nifti import save_nifti_reproducible
from benchmark.data.resample import resample_to_spacing, to_ras
from benchmark.data.splits import make_splits
from benchmark.data.writer import write_cases_csv, write_dataset_json
from benchmark.errors import InputError
from benchmark.io import atomic_dir

AFFINE_TOL_MM = 1e-2


def _load_canonical(path: Path, what: str):
    """(array, affine) of ``path`` reoriented to RAS; InputError for missing/corrupt files."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
        array = _read_scaled(img.dataobj)
    except FileNotFoundError as exc:
        raise InputError(f"{path}: {what} not found") from exc
    except Exception as exc:  # nibabel: ImageFileError, EOFError, zlib.error, ...
        raise InputError(f"{path}: cannot read {what} ({type(exc).__name__}: {exc})") from exc
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise InputError(f"{path}: {what} has shape {array.shape}, expected a 3D volume")
    return to_ras(array, img.affine)


def _read_scaled(proxy) -> np.ndarray:
    """Array of a nibabel proxy; slope/intercept applied in float32 (nibabel would give
    float64, 1.6 GB for a 512x512x800 CT stored as int16 with an intercept)."""
    slope, inter = getattr(proxy, "slope", 1.0), getattr(proxy, "inter", 0.0)
    if not hasattr(proxy, "get_unscaled") or (slope == 1.0 and inter == 0.0):
        return np.asanyarray(proxy)
    return proxy.get_unscaled().astype(np.float32) * np.float32(slope) + np.float32(inter)


def _case_labels(case: SourceCase, shape, affine) -> np.ndarray:
    """uint8 0/1/2 labels of ``case`` on the CT grid (mapped multi-class file or organ masks)."""
    merged = np.zeros(shape, np.uint8)
    for path in case.labels:
        labels, label_affine = _load_canonical(path, "label file")
        if labels.shape != shape or np.abs(label_affine - affine).max() > AFFINE_TOL_MM:
            raise InputError(f"{path}: grid {labels.shape} does not match its CT {case.image} {shape} "
                             "(shape and affine must agree)")
        values = np.unique(labels)
        if case.label_map is None:
            merged[labels > 0] = 1
            continue
        unknown = [v.item() for v in values if v not in case.label_map]
        if unknown:
            raise InputError(f"{path}: label values {unknown} unknown, expected {sorted(case.label_map)}")
        lut = np.zeros(int(max(case.label_map)) + 1, np.uint8)
        for src_value, dst_value in case.label_map.items():
            lut[src_value] = dst_value
        merged = np.maximum(merged, lut[labels.astype(np.int64)])
    return merged


def _has_lesion(case: SourceCase) -> bool:
    return any(np.any(_load_canonical(p, "lesion mask")[0] > 0) for p in case.lesion_masks)


def convert_case(case: SourceCase, out_dir: Path, spacing) -> tuple[bool, str]:
    """Write ``out_dir/<case_id>/{ct,labels}.nii.gz``; returns (has_tumor, content fingerprint)."""
    ct, affine = _load_canonical(case.image, "CT image")
    fingerprint = content_fingerprint(ct)
    labels = _case_labels(case, ct.shape, affine)
    ct, new_affine = resample_to_spacing(ct, affine, spacing, order=1)
    native_labels = labels
    labels, _ = resample_to_spacing(labels, affine, spacing, order=0)
    if not np.any(labels == 1):
        raise InputError(f"{case.labels[0]}: no organ voxels (label 1) after resampling to {list(spacing)} mm")
    ct16 = np.clip(np.rint(ct), -1024, 3071).astype(np.int16)
    save_nifti_reproducible(out_dir / case.case_id / "ct.nii.gz", ct16, new_affine)
    save_nifti_reproducible(out_dir / case.case_id / "labels.nii.gz", labels, new_affine)
    if labels.shape != native_labels.shape or not np.allclose(new_affine, affine, atol=AFFINE_TOL_MM):
        # the original grid (RAS-oriented) is what the case is scored on (docs/metrics.md)
        save_nifti_reproducible(out_dir / case.case_id / NATIVE_LABELS, native_labels, affine)
    return bool(np.any(labels == 2)), fingerprint


def read_demographics(path: Path | None) -> dict[str, dict]:
    """case_id -> {"age", "sex"} from a CSV with columns case_id, age, sex (sex M/F/male/female)."""
    if path is None:
        return {}
    import pandas as pd

    if not Path(path).is_file():
        raise InputError(f"{path}: demographics CSV not found")
    table = pd.read_csv(path, dtype={"case_id": str})
    missing = [c for c in ("case_id", "age", "sex") if c not in table.columns]
    if missing:
        raise InputError(f"{path}: columns {missing} missing (expected case_id,age,sex)")
    out = {}
    for row in table.itertuples():
        sex = {"m": "M", "male": "M", "f": "F", "female": "F"}.get(str(row.sex).strip().lower())
        age = pd.to_numeric(row.age, errors="coerce")
        out[str(row.case_id)] = {"age": None if pd.isna(age) else int(round(float(age))), "sex": sex}
    return out


def import_dataset(fmt: str, src, organ: str, out, spacing=(1.0, 1.0, 1.0), demographics=None,
                   append: bool = False, name: str | None = None, progress: bool = True,
                   max_cases: int | None = None, seed: int = 0, assume_healthy: bool = False,
                   against: tuple = ()) -> Path:
    """Import ``src`` (format msd|lits|kits|atlas) into the canonical dataset ``out``.

    Args:
        spacing: target voxel size (mm); the published setups use 1 mm isotropic.
        demographics: optional CSV (case_id,age,sex) merged into cases.csv.
        append: add to an existing dataset at ``out`` instead of requiring a new folder.
        max_cases / seed: import only a seeded random subset of ``max_cases`` cases (e.g. the
            paper's 116 / 104 / 120 healthy CTs from AbdomenAtlas); the same seed picks the same cases.
        assume_healthy: accept atlas CTs that have no lesion mask file (default: an error).
        against: more dataset folders whose labeled CTs no healthy CT may be (besides ``out``
            and the dataset folders next to it).

    Returns:
        The dataset folder.
    """
    src, out = Path(src), Path(out)
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != 3 or min(spacing) <= 0:
        raise InputError(f"--spacing {spacing}: expected three positive numbers (mm)")
    cases = subsample(find_cases(fmt, src, organ, assume_healthy=assume_healthy), max_cases, seed)
    demo = {**(kits_demographics(src) if fmt == "kits" else {}), **read_demographics(demographics)}
    known = known_scans(out, against)
    if append and (out / "dataset.json").is_file():
        return _append(fmt, cases, out, organ, spacing, demo, progress, known)
    if out.exists() and any(out.iterdir()):
        raise InputError(f"{out}: already exists and is not empty; use --append to add cases to a dataset")
    with atomic_dir(out) as tmp:
        rows = _convert_all(cases, tmp / "cases", spacing, demo, progress)
        check_healthy_pool(rows, known, out)
        write_fingerprints(tmp, rows)
        write_cases_csv(tmp, _without_fingerprints(rows))
        write_dataset_json(tmp, name=name or f"{fmt}_{organ}", organ=organ, spacing=spacing,
                           source_format=fmt, num_cases=len(rows))
        _try_splits(tmp)
    return out


def subsample(cases: list[SourceCase], max_cases: int | None, seed: int) -> list[SourceCase]:
    """A seeded random subset of ``max_cases`` cases in case-id order (all when None or enough)."""
    if max_cases is None:
        return cases
    if max_cases < 1:
        raise InputError(f"--max-cases {max_cases}: expected a positive number of cases")
    if max_cases >= len(cases):
        return cases
    chosen = np.random.default_rng(seed).choice(len(cases), size=max_cases, replace=False)
    return [cases[i] for i in sorted(chosen)]


def _try_splits(root: Path) -> None:
    """Write splits.json; a dataset with fewer patients than folds gets none yet (say so)."""
    try:
        make_splits(root)
    except InputError as exc:
        print(f"tumorbench: note: splits.json not written ({exc}); append more cases or run "
              "`tumorbench data splits`", file=sys.stderr)


def _convert_all(cases: list[SourceCase], case_root: Path, spacing, demo, progress) -> list[dict]:
    from tqdm.auto import tqdm

    rows = []
    for case in tqdm(cases, desc="import", unit="case", disable=not progress):
        if case.lesion_masks and _has_lesion(case):
            print(f"tumorbench: skipping {case.image}: its lesion mask is not empty (not a healthy CT)",
                  file=sys.stderr)
            continue
        has_tumor, fingerprint = convert_case(case, case_root, spacing)
        info = demo.get(case.case_id, {})
        rows.append({"case_id": case.case_id, "age": info.get("age"), "sex": info.get("sex"),
                     "has_tumor": has_tumor, "role": case.role, "source": case.source, "fingerprint": fingerprint})
    if not rows:
        raise InputError(f"{cases[0].image.parent.parent}: every case was skipped, nothing to import")
    return rows


def _without_fingerprints(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "fingerprint"} for row in rows]


def _append(fmt, cases, out: Path, organ, spacing, demo, progress, known) -> Path:
    """Add ``cases`` to the dataset at ``out`` (same organ and spacing), then rebuild the splits."""
    ds = Dataset.open(out)
    if ds.organ != organ:
        raise InputError(f"{out / 'dataset.json'}: organ is {ds.organ!r}, cannot append {organ} cases")
    if not np.allclose(ds.spacing, spacing):
        raise InputError(f"{out / 'dataset.json'}: spacing {list(ds.spacing)}, cannot append at {list(spacing)} mm")
    clash = sorted(set(ds.case_ids()) & {c.case_id for c in cases})
    if clash:
        raise InputError(f"{out / 'cases.csv'}: case ids already present: {clash[:5]}")
    staging = Path(tempfile.mkdtemp(prefix=".import-staging-", dir=out))
    try:
        rows = _convert_all(cases, staging, spacing, demo, progress)
        check_healthy_pool(rows, known, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    (out / "cases").mkdir(exist_ok=True)
    for row in rows:
        os.replace(staging / row["case_id"], out / "cases" / row["case_id"])
    shutil.rmtree(staging, ignore_errors=True)
    old_rows = [{k: (None if v != v else v) for k, v in r.items()} for r in ds.cases.to_dict("records")]
    write_fingerprints(out, rows, keep=read_fingerprints(out))
    write_cases_csv(out, old_rows + _without_fingerprints(rows))
    formats = sorted((set(str(ds.meta.get("source_format", "")).split("+")) | {fmt}) - {""})
    meta = {k: v for k, v in ds.meta.items() if k not in ("name", "organ", "spacing", "source_format", "num_cases", "labels")}
    write_dataset_json(out, name=ds.name, organ=organ, spacing=spacing, source_format="+".join(formats),
                       num_cases=len(old_rows) + len(rows), **meta)
    if (out / "splits.json").is_file():
        os.replace(out / "splits.json", out / "splits.before-append.json")
    _try_splits(out)
    return out
