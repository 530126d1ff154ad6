"""Plain-text summary of a canonical dataset (cases, roles, tumors by size, grid, demographics)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from benchmark.data.layout import Dataset
from tumorbench_common.cohorts import SIZE_BIN_NAMES, sex_or_none, size_bin



def lesion_radii_mm(labels: np.ndarray, spacing) -> list[float]:
    """Equivalent-sphere radius (mm) of each connected tumor component (label 2, 26-connected)."""
    components, n = ndi.label(labels == 2, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return []
    voxel_mm3 = float(np.prod(spacing))
    counts = np.bincount(components.ravel())[1:]
    return [float((3.0 * c * voxel_mm3 / (4.0 * np.pi)) ** (1.0 / 3.0)) for c in counts]


def summarize_dataset(path: str | Path, progress: bool = False) -> str:
    """Multi-line table: organ, labeled/healthy counts, tumor counts per size bin, grid, demographics."""
    import nibabel as nib
    from tqdm.auto import tqdm

    ds = Dataset.open(path)
    radii, shapes, organ_ml = [], [], []
    for case_id in tqdm(ds.case_ids(), desc="summary", unit="case", disable=not progress):
        img = nib.load(str(ds.labels_path(case_id)))
        labels = np.asanyarray(img.dataobj)
        shapes.append(tuple(int(n) for n in labels.shape))
        radii += lesion_radii_mm(labels, ds.spacing)
        organ_ml.append(float(np.count_nonzero(labels)) * float(np.prod(ds.spacing)) / 1000.0)
    cases = ds.cases
    n_labeled = int((cases["role"] == "labeled").sum())
    bins = dict.fromkeys(SIZE_BIN_NAMES, 0)
    for radius in radii:
        bins[size_bin(radius)] += 1
    rows = [
        ("dataset", f"{ds.name}  ({ds.root})"),
        ("organ", f"{ds.organ}  (source: {ds.meta.get('source_format', '?')})"),
        ("cases", f"{len(cases)}  labeled {n_labeled}, healthy {len(cases) - n_labeled}, "
                  f"with tumor {int(cases['has_tumor'].astype(int).sum())}"),
        ("tumors", f"{len(radii)} lesions; radius bins (mm) " + ", ".join(f"{k}: {v}" for k, v in bins.items())),
        ("organ+tumor volume", _range_text(organ_ml, "mL")),
        ("spacing", " x ".join(f"{s:g}" for s in ds.spacing) + " mm"),
        ("shape", _shape_text(shapes)),
        ("age", _age_text(cases["age"])),
        ("sex", _sex_text(cases["sex"])),
        ("splits", _splits_text(ds)),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _range_text(values: list[float], unit: str) -> str:
    if not values:
        return "-"
    return f"median {np.median(values):.0f} {unit} (min {min(values):.0f}, max {max(values):.0f})"


def _shape_text(shapes: list[tuple[int, ...]]) -> str:
    if not shapes:
        return "-"
    unique = sorted(set(shapes))
    if len(unique) == 1:
        return " x ".join(map(str, unique[0]))
    arr = np.array(shapes)
    return (f"varies: min {' x '.join(map(str, arr.min(0)))}, median {' x '.join(str(int(v)) for v in np.median(arr, 0))}, "
            f"max {' x '.join(map(str, arr.max(0)))}")


def _age_text(ages) -> str:
    import pandas as pd

    values = pd.to_numeric(ages, errors="coerce").dropna()
    if values.empty:
        return "unknown"
    missing = len(ages) - len(values)
    text = f"mean {values.mean():.1f} +- {values.std(ddof=0):.1f}, range {values.min():.0f}-{values.max():.0f}"
    return text + (f", {missing} unknown" if missing else "")


def _sex_text(sexes) -> str:
    values = [sex_or_none(s) or "unknown" for s in sexes]
    return ", ".join(f"{k} {values.count(k)}" for k in ("M", "F", "unknown") if values.count(k))


def _splits_text(ds: Dataset) -> str:
    if not (ds.root / "splits.json").is_file():
        return "none (run `tumorbench data splits`)"
    sizes = [len(f["val"]) for f in ds.splits]
    return f"{len(sizes)} folds, val sizes {sizes}"
