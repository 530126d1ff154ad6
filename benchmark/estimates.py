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


def cell_iterations(train: dict, n_train: int) -> int:
    per_epoch = train.get("iters_per_epoch") or max(1, math.ceil(n_train / int(train.get("batch_size", 2))))
    return int(train["epochs"]) * int(per_epoch)


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
    from benchmark.data import Dataset

    datasets, largest, rows = {}, {}, []
    device = "cuda" if "cuda" in str(grid.device) else "cpu"
    for cell in cells:
        if cell.organ not in datasets:
            datasets[cell.organ] = Dataset.open(grid.datasets[cell.organ])
        ds = datasets[cell.organ]
        train_ids, val_ids = ds.fold(cell.fold)
        key = (cell.organ, cell.fold)
        if key not in largest:
            largest[key] = _largest_case_voxels(ds, val_ids)
        iterations = cell_iterations(cell.hp(), len(train_ids))
        rows.append({"cell": cell, "iterations": iterations,
                     "gpu_hours": {g: gpu_hours(cell.backbone, cell.preset, iterations, g) for g in GPU_KINDS},
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
        print(f"{row['cell'].run_name:<34} {row['iterations']:>10} {hours} {_fmt(row['ram_gb'], 1):>11}", file=file)
    totals = " ".join(f"{_fmt(_sum([r['gpu_hours'][g] for r in rows])):>11}" for g in GPU_KINDS)
    print(f"{'total':<34} {sum(r['iterations'] for r in rows):>10} {totals} "
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
