"""Collect real and synthetic tumors as small NIfTI crops (input of radiomics and reader studies).

Real tumors: 26-connected components (>= 8 voxels, as the evaluation's lesions in
benchmark/lesions.py and DiffTumor's minimum size) of label 2 in labeled cases. Synthetic tumors: for each sampled
real tumor, the generator adds one tumor of the matching size type to a healthy case of the same
dataset (``make_generator(name, organ, size_probs={type: 1})``), so size distributions match.

Output folder ``OUT/tumors/<tumor_id>/{roi,context}_{ct,mask}.nii.gz`` and ``OUT/tumors.csv``
with one row per tumor: ``tumor_id, source, organ, dataset, case_id, size_type, size_bin,
radius_mm, volume_mm3, early, roi_ct_path, roi_mask_path, context_ct_path, context_mask_path,
center_z`` (paths relative to OUT).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmark.errors import InputError
from benchmark.realism_crops import (EARLY_RADIUS_MM, SIZE_TYPES, CropSettings, components, context_box,
                                     equivalent_radius, roi_box, size_bin, size_type_for_radius)
from synthesis.errors import SynthesisInputError

def save_tumor(out: Path, tumor_id: str, ct: np.ndarray, tumor: np.ndarray, spacing: Sequence[float],
               meta: dict[str, Any], settings: CropSettings) -> dict[str, Any]:
    """Write the ROI and context crops of one tumor; return its tumors.csv row (paths relative to ``out``)."""
    from benchmark.io import save_nifti_atomic

    folder = out / "tumors" / tumor_id
    affine = np.diag([*map(float, spacing), 1.0])
    paths: dict[str, Any] = {}
    for kind, box in (("roi", roi_box(tumor, settings.roi_margin_vox)),
                      ("context", context_box(tumor, spacing, settings))):
        paths[f"{kind}_ct"] = folder / f"{kind}_ct.nii.gz"
        paths[f"{kind}_mask"] = folder / f"{kind}_mask.nii.gz"
        save_nifti_atomic(paths[f"{kind}_ct"], np.asarray(ct[box], np.float32), affine)
        save_nifti_atomic(paths[f"{kind}_mask"], tumor[box].astype(np.uint8), affine)
        if kind == "context":
            z_idx = np.argwhere(tumor[box])[:, 2]
            center_z = int(round((z_idx.min() + z_idx.max()) / 2))
    radius = equivalent_radius(int(tumor.sum()), spacing)
    return {"tumor_id": tumor_id, **meta, "size_type": size_type_for_radius(radius),
            "size_bin": size_bin(radius), "radius_mm": round(radius, 3),
            "volume_mm3": round(float(tumor.sum() * np.prod(spacing)), 3), "early": radius <= EARLY_RADIUS_MM,
            **{f"{k}_path": str(v.relative_to(out)) for k, v in paths.items()},
            "center_z": center_z}


def load_case(dataset: Any, case_id: str) -> tuple[np.ndarray, np.ndarray]:
    from benchmark.io import load_nifti

    ct = np.asarray(load_nifti(dataset.ct_path(case_id), "CT").dataobj, dtype=np.float32)
    labels = np.asarray(load_nifti(dataset.labels_path(case_id), "labels").dataobj).astype(np.uint8)
    if ct.shape != labels.shape:
        raise InputError(f"{dataset.labels_path(case_id)}: shape {labels.shape} differs from CT {ct.shape}")
    return ct, labels


def _labeled_components(dataset: Any, min_voxels: int, progress: bool) -> list[tuple[str, int, float]]:
    """(case_id, component index, equivalent radius mm) of every real tumor in the labeled cases."""
    from tqdm.auto import tqdm

    found = []
    for case_id in tqdm(dataset.case_ids("labeled"), desc=f"{dataset.name}: real tumors",
                        disable=not progress, leave=False):
        _, labels = load_case(dataset, case_id)
        comps = components(labels == 2, min_voxels)
        found += [(case_id, k, equivalent_radius(int(c.sum()), dataset.spacing)) for k, c in enumerate(comps)]
    return found


def collect_real(dataset: Any, n: int | None, rng: np.random.Generator, out: Path,
                 settings: CropSettings, progress: bool = True, early_only: bool = False) -> list[dict[str, Any]]:
    """Save up to ``n`` randomly chosen real tumors (all when ``n`` is None; only radius <= 10 mm
    ones with ``early_only``)."""
    found = _labeled_components(dataset, settings.min_voxels, progress)
    found = [f for f in found if f[2] <= EARLY_RADIUS_MM] if early_only else found
    if not found:
        what = "early tumor (radius <= 10 mm)" if early_only else "tumor"
        raise InputError(f"{dataset.root}: no real {what} (label 2, >= {settings.min_voxels} voxels) in labeled cases")
    picks = sorted(rng.choice(len(found), size=min(n or len(found), len(found)), replace=False))
    by_case: dict[str, list[int]] = {}
    for i in picks:
        by_case.setdefault(found[i][0], []).append(found[i][1])
    rows = []
    for case_id, comp_ids in by_case.items():
        ct, labels = load_case(dataset, case_id)
        comps = components(labels == 2, settings.min_voxels)
        for k in comp_ids:
            meta = {"source": "real", "organ": dataset.organ, "dataset": dataset.name, "case_id": case_id}
            tumor_id = f"{dataset.organ}_real_{len(rows):04d}"
            rows.append(save_tumor(out, tumor_id, ct, comps[k], dataset.spacing, meta, settings))
    return rows


def _organ_crop(organ: np.ndarray, margin: int = 4, multiple: int = 16) -> tuple[slice, ...]:
    """Organ bounding box + margin, grown to a multiple of ``multiple`` voxels where the volume allows."""
    idx = np.argwhere(organ)
    lo, hi = idx.min(0) - margin, idx.max(0) + 1 + margin
    grow = (-(hi - lo)) % multiple
    lo, hi = lo - grow // 2, hi + (grow - grow // 2)
    shift = np.maximum(0, -lo) - np.maximum(0, hi - np.asarray(organ.shape))
    return tuple(slice(int(max(0, a + s)), int(min(d, b + s))) for a, b, s, d in zip(lo, hi, shift, organ.shape))


def synthesize_on_case(generator: Any, ct: np.ndarray, labels: np.ndarray, spacing: Sequence[float],
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Run ``generator`` on the organ crop of a healthy case; return full-size (CT, tumor mask)."""
    organ = labels > 0
    if not organ.any():
        raise InputError("healthy case has no organ voxels (label 1)")
    box = _organ_crop(organ)
    result = generator(ct[box][None], organ[box][None], tuple(spacing), rng)
    ct_out, tumor = ct.copy(), np.zeros(ct.shape, bool)
    ct_out[box] = np.asarray(result.ct_hu[0], np.float32)
    tumor[box] = np.asarray(result.tumor_mask[0], bool)
    return ct_out, tumor


def size_probs_for(name: str, size_type: str) -> dict[str, float] | None:
    """All mass on ``size_type``; None (its own sizes) for a plug-in that takes no ``size_probs``."""
    from synthesis.registry import factory_kwargs, get_entry

    probs = {t: float(t == size_type) for t in SIZE_TYPES}
    try:
        accepted = factory_kwargs(get_entry(name).load())
    except SynthesisInputError:  # not registered: make_generator says so when it builds it
        return probs
    return probs if "size_probs" in accepted or "**" in accepted else None


def collect_synthetic(dataset: Any, name: str, size_types: Sequence[str], rng: np.random.Generator,
                      out: Path, settings: CropSettings, generator_kwargs: dict[str, Any],
                      progress: bool = True) -> list[dict[str, Any]]:
    """One synthetic tumor of each requested size type, on healthy cases used round-robin."""
    from tqdm.auto import tqdm

    from synthesis.registry import make_generator

    healthy = dataset.case_ids("healthy")
    if not healthy:
        raise InputError(f"{dataset.root / 'cases.csv'}: no case with role 'healthy' to synthesize on")
    healthy = [healthy[i] for i in rng.permutation(len(healthy))]
    jobs = sorted(((healthy[i % len(healthy)], t) for i, t in enumerate(size_types)), key=lambda j: j[0])
    generators: dict[str, Any] = {}
    rows, loaded = [], (None, None)
    for case_id, size_type in tqdm(jobs, desc=f"{dataset.name}: {name}", disable=not progress, leave=False):
        if loaded[0] != case_id:
            loaded = (case_id, load_case(dataset, case_id))
        if size_type not in generators:
            generators[size_type] = make_generator(name, dataset.organ, size_probs=size_probs_for(name, size_type),
                                                   **generator_kwargs)
        try:
            ct, tumor = synthesize_on_case(generators[size_type], *loaded[1], dataset.spacing, rng)
        except SynthesisInputError as exc:  # e.g. organ too thin for this size type: skip, say so
            tqdm.write(f"warning: {name} on {case_id} ({size_type}) skipped: {exc}", file=sys.stderr)
            continue
        comps = components(tumor, settings.min_voxels)
        if not comps:
            continue  # e.g. a tiny tumor clipped away by the organ boundary
        meta = {"source": name, "organ": dataset.organ, "dataset": dataset.name, "case_id": case_id,
                "requested_size_type": size_type}
        tumor_id = f"{dataset.organ}_{name}_{len(rows):04d}"
        rows.append(save_tumor(out, tumor_id, ct, comps[int(rng.integers(len(comps)))], dataset.spacing,
                               meta, settings))
    return rows


def parse_checkpoints(items: Sequence[str] | None) -> dict[str, str]:
    """``["liver=DIR", ...]`` -> ``{"liver": "DIR"}`` (the --checkpoint option)."""
    out = {}
    for item in items or ():
        organ, sep, path = item.partition("=")
        if not sep or not organ or not path:
            raise InputError(f"--checkpoint {item!r}: expected ORGAN=DIR, e.g. liver=checkpoints/liver")
        if not Path(path).exists():
            raise InputError(f"--checkpoint {item!r}: {path} not found")
        out[organ] = path
    return out


def collect_tumors(dataset_paths: Sequence[str | Path], generators: Sequence[str], n: int | None,
                   out: str | Path, *, seed: int = 0, checkpoints: dict[str, str] | None = None,
                   device: str = "cpu", settings: CropSettings = CropSettings(),
                   early_only: bool = False, progress: bool = True) -> Any:
    """Real tumors of each dataset plus size-matched synthetic ones of each generator.

    Args:
        dataset_paths: canonical datasets (one organ each).
        generators: generator names (``hu``, ``difftumor``); may be empty (real tumors only).
        n: real tumors per dataset (None = all); each generator adds as many synthetic ones.
        out: folder receiving ``tumors/`` and ``tumors.csv``.
        checkpoints: organ -> checkpoint folder, passed to generators that need one.
        early_only: real tumors restricted to radius <= 10 mm.

    Returns:
        The tumors.csv DataFrame (paths relative to ``out``).
    """
    import pandas as pd

    from benchmark.data import Dataset

    out = Path(out)
    rows: list[dict[str, Any]] = []
    for index, path in enumerate(dataset_paths):
        dataset = Dataset.open(path)
        rng = np.random.default_rng([seed, index])
        real = collect_real(dataset, n, rng, out, settings, progress, early_only)
        rows += real
        for name in generators:
            kwargs: dict[str, Any] = {"device": device}
            if (checkpoints or {}).get(dataset.organ):
                kwargs["checkpoint"] = checkpoints[dataset.organ]
            size_types = [size_type_for_radius(r["radius_mm"]) for r in real]
            rows += collect_synthetic(dataset, name, size_types, rng, out, settings, kwargs, progress)
    table = pd.DataFrame(rows)
    table.to_csv(out / "tumors.csv", index=False)
    return table


def with_absolute_paths(table: Any, base: Path) -> Any:
    """Copy of a tumors table whose ``*_path`` columns are absolute, plus ``ct_path``/``mask_path``
    (the ROI crops) as reports.radiomics expects."""
    table = table.copy()
    for col in [c for c in table.columns if c.endswith("_path")]:
        table[col] = [str(base / p) for p in table[col]]
    table["ct_path"], table["mask_path"] = table["roi_ct_path"], table["roi_mask_path"]
    return table
