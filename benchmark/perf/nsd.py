"""`tumorbench perf nsd`: NSD at 2 mm on a liver-size pair, ours vs DeepMind vs MONAI.

The pair: a lobulated ellipsoid of about 1.7 L (reference) and a perturbed, shifted copy
(prediction) in a 512x512x200 grid at 0.8x0.8x1.5 mm, built from a seeded generator. All
implementations run in the same process on the same arrays; each is timed as the best of
``--repeats`` runs. Baselines that are not installed are reported as skipped.
"""
from __future__ import annotations

import argparse
import time
import warnings
from typing import Callable

import numpy as np

DEFAULT_SHAPE = (512, 512, 200)
DEFAULT_SPACING = (0.8, 0.8, 1.5)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__.split(": ", 1)[1].replace("``", "")
    parser.epilog = (
        "examples:\n"
        "  tumorbench perf nsd\n"
        "  tumorbench perf nsd --repeats 5 --tolerance 1.0\n"
        "  tumorbench perf nsd --shape 256 256 120 --skip-monai"
    )
    parser.add_argument("--shape", type=int, nargs=3, default=list(DEFAULT_SHAPE), help="grid size (voxels)")
    parser.add_argument("--spacing", type=float, nargs=3, default=list(DEFAULT_SPACING), help="voxel size (mm)")
    parser.add_argument("--tolerance", type=float, default=2.0, help="NSD tolerance in mm (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per implementation (best is kept)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic pair")
    parser.add_argument("--skip-monai", action="store_true", help="do not time MONAI (slowest baseline)")


def liver_like_pair(shape, spacing, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(reference, prediction) bool masks [shape]: a ~1.7 L lobulated ellipsoid and a perturbed copy.

    The prediction keeps the reference lobes with jittered phases, is 1 % larger and shifted
    by up to 2 mm per axis: a plausible good liver segmentation (NSD around 0.8-0.9 at 2 mm).
    """
    semi_axes = np.array([100.0, 75.0, 55.0])  # mm -> 4/3 pi abc = 1.73 L
    lobes = [(_unit(rng.normal(size=3)), rng.uniform(1.5, 3.5), rng.uniform(0, 2 * np.pi)) for _ in range(6)]
    jittered = [(d, f, phase + rng.normal(0, 0.1)) for d, f, phase in lobes]
    reference = _lobulated_ellipsoid(shape, spacing, semi_axes, np.zeros(3), lobes)
    prediction = _lobulated_ellipsoid(shape, spacing, semi_axes * 1.01, rng.uniform(-2, 2, size=3), jittered)
    return reference, prediction


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def _lobulated_ellipsoid(shape, spacing, semi_axes, shift_mm, lobes, amplitude=0.08) -> np.ndarray:
    """Ellipsoid whose radius is modulated by low-frequency lobes (computed on its bbox only).

    ``lobes``: (unit direction, frequency, phase) triples; the unit radius is multiplied by
    1 + amplitude / 2 * sum cos(frequency * pi * <direction, unit position> + phase).
    """
    spacing = np.asarray(spacing, dtype=np.float64)
    half_extent = np.ceil(semi_axes * (1 + 4 * amplitude) / spacing).astype(int) + 2
    center = np.array(shape) // 2 + np.round(np.asarray(shift_mm) / spacing).astype(int)
    low = np.maximum(center - half_extent, 0)
    high = np.minimum(center + half_extent, shape)
    axes = [((np.arange(lo, hi) - c) * s).astype(np.float32) for lo, hi, c, s in zip(low, high, center, spacing)]
    x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
    u, v, w = (x / np.float32(semi_axes[0]), y / np.float32(semi_axes[1]), z / np.float32(semi_axes[2]))
    radius = np.sqrt(u * u + v * v + w * w) + np.float32(1e-9)
    modulation = np.ones_like(radius)
    for direction, frequency, phase in lobes:
        d0, d1, d2 = (float(c) for c in direction)  # Python floats keep float32 arrays float32
        projection = (u * d0 + v * d1 + w * d2) / radius
        angle = np.float32(frequency * np.pi) * projection + np.float32(phase)
        modulation += np.float32(amplitude / 2) * np.cos(angle)
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slice(a, b) for a, b in zip(low, high))] = radius <= modulation
    return mask


def _time(fn: Callable[[], float], repeats: int) -> tuple[float, float, float]:
    """(value, best wall time, best process CPU time) in s of ``fn`` over ``repeats`` runs.

    CPU time is reported too because it is much less disturbed by other load on the machine.
    """
    best_wall, best_cpu, value = float("inf"), float("inf"), float("nan")
    for _ in range(max(1, repeats)):
        wall, cpu = time.perf_counter(), time.process_time()
        value = fn()
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    return value, best_wall, best_cpu


def _implementations(reference, prediction, spacing, tolerance, skip_monai):
    """[(name, callable or skip reason)] in table order."""
    from benchmark.surface import surface_dice

    impls: list[tuple[str, Callable[[], float] | str]] = [
        ("tumorbench surface_dice", lambda: surface_dice(prediction, reference, spacing, tolerance)),
    ]
    try:
        import surface_distance

        if not hasattr(np, "Inf"):  # the released package still uses np.Inf (removed in NumPy 2)
            np.Inf = np.inf  # type: ignore[attr-defined]

        def deepmind() -> float:
            distances = surface_distance.compute_surface_distances(reference, prediction, list(spacing))
            return float(surface_distance.compute_surface_dice_at_tolerance(distances, tolerance))

        impls.append(("DeepMind surface-distance", deepmind))
    except ImportError:
        impls.append(("DeepMind surface-distance", "skipped: package surface-distance not installed"))
    for subvoxels in (True, False):
        name = f"MONAI compute_surface_dice(use_subvoxels={subvoxels})"
        impls.append((name, "skipped (--skip-monai)" if skip_monai else _monai_fn(reference, prediction,
                                                                                  spacing, tolerance, subvoxels)))
    return impls


def _monai_fn(reference, prediction, spacing, tolerance, use_subvoxels):
    try:
        import torch
        from monai.metrics import compute_surface_dice
    except ImportError:
        return "skipped: monai not installed"
    y = torch.from_numpy(reference)[None, None]
    y_pred = torch.from_numpy(prediction)[None, None]

    def monai() -> float:
        with warnings.catch_warnings():  # MONAI warns about its own deprecated argument
            warnings.simplefilter("ignore", FutureWarning)
            nsd = compute_surface_dice(y_pred, y, [tolerance], include_background=True,
                                       spacing=list(spacing), use_subvoxels=use_subvoxels)
        return float(nsd[0, 0])

    return monai


def run(args: argparse.Namespace) -> int:
    spacing = tuple(float(s) for s in args.spacing)
    reference, prediction = liver_like_pair(tuple(args.shape), spacing, np.random.default_rng(args.seed))
    voxel_ml = float(np.prod(spacing)) / 1000.0
    print(f"grid {tuple(args.shape)} at {spacing} mm, tolerance {args.tolerance} mm; "
          f"reference {reference.sum() * voxel_ml:.0f} mL, prediction {prediction.sum() * voxel_ml:.0f} mL; "
          f"best of {args.repeats}")
    rows = []
    for name, impl in _implementations(reference, prediction, spacing, args.tolerance, args.skip_monai):
        rows.append((name, impl) if isinstance(impl, str) else (name, *_time(impl, args.repeats)))
    _print_table(rows)
    return 0


def _print_table(rows) -> None:
    """Rows are (name, skip note) or (name, value, wall s, cpu s); ratios are vs the first row."""
    _, _, our_wall, our_cpu = rows[0]
    print(f"{'implementation':<48} {'NSD':>12} {'wall (s)':>9} {'x ours':>7} {'cpu (s)':>8} {'x ours':>7}")
    for row in rows:
        if len(row) == 2:
            print(f"{row[0]:<48} {row[1]}")
            continue
        name, value, wall, cpu = row
        print(f"{name:<48} {value:>12.9f} {wall:>9.3f} {wall / our_wall:>6.1f}x {cpu:>8.3f} {cpu / our_cpu:>6.1f}x")
