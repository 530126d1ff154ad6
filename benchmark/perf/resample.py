"""`tumorbench perf resample`: resampling a CT and its labels to 1 mm, ours
(benchmark/data/resample.py, scipy) vs MONAI ``Spacing(scale_extent=True)``, same run, same case.

The case: an int16-valued CT of ``--shape`` voxels at ``--spacing`` mm (elliptic body, organ,
noise) and labels. Each method runs in a fresh spawned process on one thread (scipy has one):
seconds and peak resident memory above the loaded input (Linux VmHWM, reset before the call),
then the largest CT difference (HU) and the share of label voxels that differ, ours vs MONAI.
"""
from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import numpy as np

TARGET = (1.0, 1.0, 1.0)


def add_arguments(parser) -> None:
    parser.add_argument("--shape", type=int, nargs=3, default=(512, 512, 80), metavar=("X", "Y", "Z"))
    parser.add_argument("--spacing", type=float, nargs=3, default=(0.75, 0.75, 2.5), metavar=("SX", "SY", "SZ"))


def make_case(shape, spacing) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(float32 CT, uint8 labels, affine) of a deterministic abdomen-like case."""
    x, y, z = (np.linspace(-1, 1, n, dtype=np.float32) for n in shape)
    body = (x[:, None, None] / 0.85) ** 2 + (y[None, :, None] / 0.65) ** 2 <= 1
    organ = ((x[:, None, None] + 0.2) / 0.3) ** 2 + (y[None, :, None] / 0.25) ** 2 + (z[None, None] / 0.6) ** 2 <= 1
    noise = np.random.default_rng(0).normal(0, 15, shape).astype(np.float32)
    ct = np.rint(np.where(body, 40.0, -1024.0) + 60.0 * organ + noise).astype(np.float32)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = (-200.0, -180.0, -300.0)
    return ct, (organ & body).astype(np.uint8), affine


def _peak_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _measure(method: str, shape, spacing, out: str) -> tuple[float, float]:
    """In a fresh process: resample CT and labels with ``method``; (seconds, peak MB above input)."""
    import torch

    torch.set_num_threads(1)
    ct, labels, affine = make_case(shape, spacing)
    if method == "monai":
        from monai.data import MetaTensor
        from monai.transforms import Spacing

        def resample(array, mode):
            spacing_ = Spacing(pixdim=TARGET, mode=mode, padding_mode="border", scale_extent=True)
            image = MetaTensor(torch.from_numpy(array.astype(np.float32))[None], affine=torch.from_numpy(affine))
            return spacing_(image).numpy()[0]
    else:
        from benchmark.data.resample import resample_to_spacing

        def resample(array, mode):
            return resample_to_spacing(array, affine, TARGET, order=1 if mode == "bilinear" else 0)[0]
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    start_peak = _peak_bytes()
    t0 = time.perf_counter()
    ct_out, labels_out = resample(ct, "bilinear"), resample(labels, "nearest")
    seconds = time.perf_counter() - t0
    peak = (_peak_bytes() - start_peak) / 2**20
    np.savez(out, ct=ct_out, labels=labels_out.astype(np.uint8))
    return seconds, peak


def run(args) -> int:
    import tempfile

    context = multiprocessing.get_context("spawn")
    rows, outputs = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in ("ours", "monai"):
            outputs[method] = f"{tmp}/{method}.npz"
            with context.Pool(1) as pool:
                rows[method] = pool.apply(_measure, (method, tuple(args.shape), tuple(args.spacing), outputs[method]))
        ours, monai = np.load(outputs["ours"]), np.load(outputs["monai"])
        ct_diff = float(np.abs(ours["ct"] - monai["ct"]).max())
        label_diff = float((ours["labels"] != monai["labels"]).mean())
        out_shape = ours["ct"].shape
    print(f"case {'x'.join(map(str, args.shape))} at {args.spacing} mm -> 1 mm {'x'.join(map(str, out_shape))}; "
          "one thread each")
    print(f"{'method':<32} {'seconds':>8} {'peak MB':>8}")
    print(f"{'ours (scipy affine_transform)':<32} {rows['ours'][0]:8.2f} {rows['ours'][1]:8.0f}")
    print(f"{'MONAI Spacing(scale_extent)':<32} {rows['monai'][0]:8.2f} {rows['monai'][1]:8.0f}")
    print(f"max |CT ours - MONAI| = {ct_diff:.3g} HU; labels differing: {100 * label_diff:.3f} % of voxels")
    return 0
