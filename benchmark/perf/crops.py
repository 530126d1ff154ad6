"""`tumorbench perf crops`: pos/neg crop centres on a memory-mapped 1 mm CT, ours (the cache's
sampled foreground list + background by rejection sampling, models/data.py) vs MONAI's index
lists (``map_binary_to_indices`` + ``generate_pos_neg_label_crop_centers``, what
``RandCropByPosNegLabeld`` runs), same run, same case.

The case (written once under ``--out`` as .npy and memory-mapped, as models/cache.py stores it):
an int16 CT with an elliptic body and an ellipsoid organ of ``--organ-ml`` (liver ~1.5 L), uint8
labels. Columns: the per-case set-up (ours: ``argwhere`` + 50 000-voxel sample, once when the
cache entry is written; MONAI: both index lists, once per case and training process), its peak
Python-heap memory (tracemalloc), the index memory kept per case and the median time per crop
centre (pos_fraction 0.5, background in the body: HU > window low).
"""
from __future__ import annotations

import statistics
import time
import tracemalloc
from pathlib import Path

import numpy as np


def add_arguments(parser) -> None:
    parser.add_argument("--out", default="perf_crops", help="folder for the case's .npy files (reused)")
    parser.add_argument("--shape", type=int, nargs=3, default=(512, 512, 200), metavar=("X", "Y", "Z"),
                        help="CT grid at 1 mm (default 512 512 200)")
    parser.add_argument("--organ-ml", type=float, default=1500.0, help="organ volume in ml (default 1500)")
    parser.add_argument("--crops", type=int, default=2000, help="crop centres timed per method (median)")
    parser.add_argument("--crop", type=int, default=96)


def make_case(out: Path, shape, organ_ml: float) -> tuple[np.ndarray, np.ndarray]:
    """Memory maps of the int16 CT and uint8 labels (written once)."""
    out.mkdir(parents=True, exist_ok=True)
    ct_path, label_path = out / f"ct_{'x'.join(map(str, shape))}.npy", out / f"label_{organ_ml:g}.npy"
    if not (ct_path.is_file() and label_path.is_file()):
        x, y, z = (np.arange(n, dtype=np.float32) - n / 2 for n in shape)
        body = (x[:, None] / (0.42 * shape[0])) ** 2 + (y[None] / (0.32 * shape[1])) ** 2 <= 1
        radius = (3 * organ_ml * 1000 / (4 * np.pi * 1.5)) ** (1 / 3)  # semi-axes r, 1.5 r, r (mm = voxels)
        organ = ((x[:, None, None] / radius) ** 2 + (y[None, :, None] / (1.5 * radius)) ** 2
                 + (z[None, None] / radius) ** 2) <= 1
        ct = np.where(body[..., None], np.int16(40), np.int16(-1024)) + np.int16(60) * organ
        np.save(label_path, (organ & body[..., None]).astype(np.uint8))
        np.save(ct_path, ct.astype(np.int16))
    return np.load(ct_path, mmap_mode="r"), np.load(label_path, mmap_mode="r")


def _peak(fn):
    """(result, seconds, peak traced MB) of ``fn()``."""
    tracemalloc.start()
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, seconds, peak


def _median_us(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e6 * statistics.median(times)


def run(args) -> int:
    from monai.transforms.utils import generate_pos_neg_label_crop_centers, map_binary_to_indices

    from models.cache import FG_SAMPLES
    from models.config import TrainConfig
    from models.data import _select_start
    from models.volumes import Volume

    ct, label = make_case(Path(args.out), tuple(args.shape), args.organ_ml)
    crop = (args.crop,) * 3
    cfg = TrainConfig(backbone="unet", crop_size=crop, pos_fraction=0.5)

    def ours_setup():
        fg = np.argwhere(label > 0).astype(np.int32)
        return fg[np.sort(np.random.default_rng(0).choice(len(fg), min(FG_SAMPLES, len(fg)), replace=False))]

    fg, ours_s, ours_peak = _peak(ours_setup)
    vol = Volume("case", ct, label, fg, healthy=False, min_shape=crop)
    rng = np.random.default_rng(0)
    ours_us = _median_us(lambda: _select_start(vol, cfg, False, rng), args.crops)

    (fg_idx, bg_idx), monai_s, monai_peak = _peak(lambda: map_binary_to_indices(label[None], ct[None], cfg.window[0]))
    state = np.random.RandomState(0)
    monai_us = _median_us(lambda: generate_pos_neg_label_crop_centers(
        crop, 1, 0.5, label.shape, fg_idx, bg_idx, state), args.crops)

    print(f"case {'x'.join(map(str, label.shape))} int16, memory-mapped; organ {int((label > 0).sum()):,} voxels "
          f"(1 mm); body {len(bg_idx) + len(fg_idx):,} voxels; crop {args.crop}^3")
    print(f"{'method':<34} {'set-up s':>9} {'set-up peak MB':>15} {'kept MB/case':>13} {'us/crop':>8}")
    print(f"{'ours (cache fg sample + rejection)':<34} {ours_s:9.2f} {ours_peak:15.0f} {fg.nbytes / 2**20:13.1f} "
          f"{ours_us:8.1f}")
    kept = (np.asarray(fg_idx).nbytes + np.asarray(bg_idx).nbytes) / 2**20
    print(f"{'MONAI index lists (PosNegLabeld)':<34} {monai_s:9.2f} {monai_peak:15.0f} {kept:13.1f} {monai_us:8.1f}")
    return 0
