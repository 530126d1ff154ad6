"""Resource estimates for `tumorbench run GRID --dry-run`: per cell and in total, training
iterations, GPU-hours from measured throughput, and peak host RAM of a training process.

GPU-hours = training iterations / measured it/s (validation and the final sliding-window
inference are not included: on the paper preset they add roughly one validation pass over the
fold every ``val_every`` epochs). Throughput figures (iterations/s at the preset's crop and
batch, AMP on CUDA) were measured with `tumorbench perf train`; a (backbone, preset, GPU) without
a measured figure prints ``n/a`` instead of a guess.

Peak RAM (host) with the preprocessed cache (`models.cache`): a measured base for the process
and its DataLoader workers plus what validation holds for its largest case: float32 CT and its
windowed copy, labels and prediction (10 bytes/voxel; on CUDA the stitching buffers live in GPU
memory), or 38 bytes/voxel when the cell runs on the CPU (logits and counts in RAM too).
"""
from __future__ import annotations

import math
import sys
from typing import Sequence

# iterations/s: (backbone, preset, gpu) -> it/s, measured by `tumorbench perf train` (docs/runner.md)
IT_PER_S: dict[tuple[str, str, str], float] = {
    ("unet", "paper", "H200"): 42.0,  # 96^3 crops, batch 2, AMP bf16
    ("unet", "tiny", "H200"): 100.0,
}
GPU_KINDS = ("H200",)
BASE_RAM_GB = 3.0  # main process (torch, CUDA context) + 8 workers over the cache, see docs/runner.md
HOST_BYTES_PER_VOXEL = {"cuda": 10, "cpu": 38}


def cell_iterations(train: dict, n_train: int | None) -> int | None:
    """epochs x iterations per epoch (one epoch = one pass over the training scans unless
    ``iters_per_epoch`` is set); None when that needs the dataset and it does not exist yet."""
    per_epoch = train.get("iters_per_epoch")
    if not per_epoch:
        if n_train is None:
            return None
        per_epoch = max(1, math.ceil(n_train / int(train.get("batch_size", 2))))
    return int(train["epochs"]) * int(per_epoch)


def _open(path):
    """The dataset at ``path``, or None when it does not exist yet (dry runs before the data)."""
    from benchmark.data import Dataset
    from benchmark.errors import InputError

    try:
        return Dataset.open(path)
    except InputError:
        return None


def _train_and_test_ids(ds, cell) -> tuple[list[str] | None, list[str]]:
    """The cell's training ids (its regime's roles; inner validation split excluded when the cell
    selects there, `benchmark.cell_pipeline.cases_used`) and test fold;
    (None, []) while the dataset has no splits.json. A splits.json without ``inner_val`` gets the
    one the run would add (`make_splits`), in memory: a dry run writes nothing."""
    from benchmark.cell_pipeline import training_case_ids
    from benchmark.data.splits import DEFAULT_SEED, add_inner_val, fold_cases
    from benchmark.errors import InputError

    try:
        folds = ds.splits
    except InputError:
        return None, []
    if any("inner_val" not in fold for fold in folds):
        folds = add_inner_val(folds, ds.cases, DEFAULT_SEED)
    fit, _, test = fold_cases(ds, cell.fold, folds)
    if cell.selection == "final":
        fit = list(folds[cell.fold]["train"])
    return training_case_ids(cell, ds, fit), test


def gpu_hours(backbone: str, preset: str, iterations: int, gpu: str) -> float | None:
    rate = IT_PER_S.get((backbone, preset, gpu))
    return None if rate is None else iterations / rate / 3600.0


def _largest_case_voxels(dataset, case_ids: Sequence[str]) -> int | None:
    """Voxels of the largest case (NIfTI headers only); None when a header cannot be read."""
    import nibabel as nib

    try:
        return max((int(math.prod(nib.load(str(dataset.ct_path(c))).shape)) for c in case_ids), default=0)
    except Exception:  # nibabel raises many types for unreadable files
        return None


def estimate(grid, cells) -> list[dict]:
    """One row per cell: iterations, GPU-hours per GPU kind (None: not measured), peak RAM GB."""
    datasets, largest, rows = {}, {}, []
    device = "cuda" if "cuda" in str(grid.device) else "cpu"
    for cell in cells:
        if cell.organ not in datasets:
            datasets[cell.organ] = _open(grid.datasets[cell.organ])
        ds = datasets[cell.organ]
        train_ids, test_ids = _train_and_test_ids(ds, cell) if ds is not None else (None, [])
        key = (cell.organ, cell.fold)
        if key not in largest:
            largest[key] = _largest_case_voxels(ds, test_ids) if ds is not None else None
        iterations = cell_iterations(cell.hp(), None if train_ids is None else len(train_ids))
        rows.append({"cell": cell, "iterations": iterations,
                     "gpu_hours": {g: None if iterations is None else gpu_hours(cell.backbone, cell.preset, iterations, g)
                                   for g in GPU_KINDS},
                     "ram_gb": None if largest[key] is None
                     else BASE_RAM_GB + HOST_BYTES_PER_VOXEL[device] * largest[key] / 1024**3})
    return rows


def print_estimates(grid, cells, file=None) -> None:
    """The estimate table under the dry-run's cell table."""
    file = file or sys.stdout
    rows = estimate(grid, cells)
    print(f"\nestimates ({'; '.join(GPU_KINDS)} throughput measured, see docs/runner.md):", file=file)
    print(f"{'cell':<34} {'iterations':>10} " + " ".join(f"{'GPU-h ' + g:>11}" for g in GPU_KINDS)
          + f" {'peak RAM GB':>11}", file=file)
    for row in rows:
        hours = " ".join(f"{_fmt(row['gpu_hours'][g]):>11}" for g in GPU_KINDS)
        print(f"{row['cell'].run_name:<34} {_fmt(row['iterations'], 0):>10} {hours} {_fmt(row['ram_gb'], 1):>11}",
              file=file)
    totals = " ".join(f"{_fmt(_sum([r['gpu_hours'][g] for r in rows])):>11}" for g in GPU_KINDS)
    print(f"{'total':<34} {_fmt(_sum([r['iterations'] for r in rows]), 0):>10} {totals} "
          f"{_fmt(max((r['ram_gb'] for r in rows if r['ram_gb'] is not None), default=None), 1):>11} (max)",
          file=file)
    missing = sorted({f"{r['cell'].backbone}/{r['cell'].preset}" for r in rows
                      if any(r['gpu_hours'][g] is None for g in GPU_KINDS)})
    if missing:
        print(f"n/a: no measured it/s for {', '.join(missing)} (measure with `tumorbench perf train "
              "--backbone B --size P --device cuda` and add it to benchmark.estimates.IT_PER_S); "
              "a total with n/a cells counts only the measured ones", file=file)


def _sum(values) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"
