"""Seeded synthetic abdominal CT datasets in the canonical layout (CPU-friendly test data).

``generate_phantom_dataset(out, "liver", 24, seed=0)`` writes DATASET/dataset.json,
cases.csv, cases/<id>/{ct,labels}.nii.gz and splits.json. Every case has its own random
stream ``default_rng([seed, organ_index, case_index])``, and files are written with a fixed
gzip header, so the same seed gives byte-identical files. See docs/data.md.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from benchmark.data.layout import ORGANS
from benchmark.data.nifti import save_nifti_reproducible
from benchmark.data.phantom_anatomy import ORGAN_IDS, TUMOR, build_anatomy
from benchmark.data.phantom_shapes import Grid
from benchmark.data.phantom_tumors import render_lesion, sample_lesions
from benchmark.data.splits import make_splits
from benchmark.data.writer import write_cases_csv, write_dataset_json
from benchmark.errors import InputError
from benchmark.io import atomic_dir

DEFAULT_SPACING = (2.0, 2.0, 2.0)
FIELD_OF_VIEW_MM = (224.0, 192.0, 144.0)  # 112 x 96 x 72 voxels at 2 mm
MIN_CASES = 5  # one per fold


@dataclass(frozen=True)
class PhantomCase:
    """One generated case: CT (int16 HU, (nx, ny, nz)), labels (uint8 0/1/2), demographics."""

    ct: np.ndarray
    labels: np.ndarray
    age: int
    sex: str
    n_lesions: int


def generate_case(organ: str, grid: Grid, rng: np.random.Generator, with_tumor: bool) -> PhantomCase:
    """Generate one phantom CT; labels are the dataset organ (1) and its tumors (2) only."""
    sex = "M" if rng.random() < 0.5 else "F"
    age = int(np.clip(np.round(rng.normal(60.0, 12.0)), 20, 90))
    canvas = build_anatomy(grid, rng, sex)
    organ_id = ORGAN_IDS[organ]
    n_lesions, attempts = 0, 0
    while with_tumor and n_lesions == 0:  # a lesion clipped away entirely is redrawn
        attempts += 1
        if attempts > 20:
            raise RuntimeError(f"phantom: could not place a {organ} tumor (organ too small for the grid?)")
        for lesion in sample_lesions(canvas, organ, organ_id, rng):
            n_lesions += render_lesion(canvas, organ, organ_id, lesion, rng) > 0
    labels = np.zeros(grid.shape, np.uint8)
    labels[canvas.owner == organ_id] = 1
    labels[canvas.owner == TUMOR] = 2
    return PhantomCase(_scanner(canvas.hu, grid, rng), labels, age, sex, int(n_lesions))


def _scanner(hu: np.ndarray, grid: Grid, rng: np.random.Generator) -> np.ndarray:
    """Point-spread blur (~1 mm) + slightly correlated noise -> int16 HU.

    The noise std is 10-15 HU for the default 2 mm voxel and falls as 1/sqrt(voxel volume)
    (quantum noise: a voxel of twice the volume collects twice the photons), so a coarse grid is
    not noisier per mm^3 than the default one (3 mm voxels: 5.4-8.2 HU).
    """
    blurred = ndi.gaussian_filter(hu, sigma=[0.9 / s for s in grid.spacing])
    noise = ndi.gaussian_filter(rng.standard_normal(grid.shape, dtype=np.float32), sigma=0.6)
    per_voxel = np.sqrt(float(np.prod(DEFAULT_SPACING)) / float(np.prod(grid.spacing)))
    noise *= np.float32(rng.uniform(10.0, 15.0) * per_voxel / max(float(noise.std()), 1e-6))
    return np.clip(np.rint(blurred + noise), -1024, 3071).astype(np.int16)


def anatomy_ct(spacing, seed: int, sex: str = "M") -> tuple[np.ndarray, np.ndarray]:
    """(CT int16 HU, structure id per voxel: ``phantom_anatomy`` AIR ... BONE) of one phantom
    without tumors on the default field of view at ``spacing``; every structure keeps its label
    (datasets keep only the organ's). The same seed gives the same anatomy in mm at any spacing."""
    grid = phantom_grid(None, spacing)
    rng = np.random.default_rng(seed)
    canvas = build_anatomy(grid, rng, sex)
    return _scanner(canvas.hu, grid, rng), canvas.owner


def phantom_grid(shape=None, spacing=None) -> Grid:
    """Grid from optional shape/spacing; the missing one keeps the default field of view."""
    spacing = tuple(float(s) for s in (spacing or DEFAULT_SPACING))
    if len(spacing) != 3 or min(spacing) <= 0:
        raise InputError(f"--spacing {spacing}: expected three positive numbers (mm)")
    if shape is None:
        shape = tuple(int(round(f / s)) for f, s in zip(FIELD_OF_VIEW_MM, spacing))
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3 or min(shape) < 16:
        raise InputError(f"--shape {shape}: expected three sizes of at least 16 voxels")
    return Grid(shape, spacing)  # type: ignore[arg-type]


def tumor_roles(n_cases: int, tumor_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean per case (True = with tumor); both roles present whenever 0 < fraction < 1."""
    if not 0.0 <= tumor_fraction <= 1.0:
        raise InputError(f"tumor_fraction={tumor_fraction}: expected a value in [0, 1]")
    n_tumor = int(round(n_cases * tumor_fraction))
    if 0.0 < tumor_fraction < 1.0:
        n_tumor = min(max(n_tumor, 1), n_cases - 1)
    roles = np.zeros(n_cases, bool)
    roles[rng.permutation(n_cases)[:n_tumor]] = True
    return roles


def generate_phantom_dataset(out, organ: str, n_cases: int, seed: int, shape=None, spacing=None,
                             tumor_fraction: float = 0.6, progress: bool = True, workers: int = 1) -> list[Path]:
    """Write a phantom dataset (``organ="all"``: out/liver, out/pancreas, out/kidney).

    Args:
        out: dataset folder (must not exist or be empty; written atomically).
        organ: liver | pancreas | kidney | all.
        n_cases: cases per organ (>= 5, one per fold). seed: non-negative int.
        shape: (nx, ny, nz) voxels; spacing: (sx, sy, sz) mm (default 2 mm, 112x96x72).
        tumor_fraction: share of cases with tumors (role labeled); the rest are healthy.
        workers: processes generating cases in parallel (0 = one per CPU, at most 8); the
            output is identical for any value.

    Returns:
        The dataset folders written.
    """
    if organ != "all" and organ not in ORGANS:
        raise InputError(f"--organ {organ!r}: expected one of {', '.join(ORGANS)} or all")
    if int(n_cases) < MIN_CASES:
        raise InputError(f"--cases {n_cases}: expected at least {MIN_CASES} (one per cross-validation fold)")
    if int(seed) < 0:
        raise InputError(f"--seed {seed}: expected a non-negative integer")
    grid = phantom_grid(shape, spacing)
    out = Path(out)
    organs = ORGANS if organ == "all" else (organ,)
    targets = [out / name for name in organs] if organ == "all" else [out]
    for target in targets:
        if target.exists() and any(target.iterdir()):
            raise InputError(f"{target}: already exists and is not empty; choose a new --out or delete it")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = min(cpus, 8, int(n_cases)) if workers == 0 else max(1, min(int(workers), int(n_cases)))
    for name, target in zip(organs, targets):
        _write_dataset(target, name, int(n_cases), int(seed), grid, tumor_fraction, progress, workers)
    return targets


def _write_case(task: tuple) -> dict:
    """Generate and write one case (top-level so worker processes can run it)."""
    case_root, organ, grid, seed, index, with_tumor = task
    case_id = f"{organ}_{index:03d}"
    rng = np.random.default_rng([seed, ORGANS.index(organ), index])
    case = generate_case(organ, grid, rng, with_tumor)
    save_nifti_reproducible(case_root / case_id / "ct.nii.gz", case.ct, grid.affine)
    save_nifti_reproducible(case_root / case_id / "labels.nii.gz", case.labels, grid.affine)
    return {"case_id": case_id, "age": case.age, "sex": case.sex, "has_tumor": with_tumor,
            "role": "labeled" if with_tumor else "healthy", "source": "phantom"}


def _write_dataset(target: Path, organ: str, n_cases: int, seed: int, grid: Grid,
                   tumor_fraction: float, progress: bool, workers: int) -> None:
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from tqdm.auto import tqdm

    roles = tumor_roles(n_cases, tumor_fraction, np.random.default_rng([seed, ORGANS.index(organ), 10**6]))
    with atomic_dir(target) as tmp:
        tasks = [(tmp / "cases", organ, grid, seed, k, bool(roles[k])) for k in range(n_cases)]
        bar = dict(total=n_cases, desc=f"phantom {organ}", unit="case", disable=not progress)
        if workers <= 1:
            rows = [_write_case(task) for task in tqdm(tasks, **bar)]
        else:  # every case has its own seed: the files do not depend on the worker count
            with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
                rows = list(tqdm(pool.map(_write_case, tasks), **bar))
        write_cases_csv(tmp, rows)
        write_dataset_json(tmp, name=f"phantom_{organ}", organ=organ, spacing=grid.spacing,
                           source_format="phantom", num_cases=n_cases, seed=seed, shape=list(grid.shape))
        make_splits(tmp)
