"""Normalised surface Dice (NSD) equal to DeepMind ``surface-distance``, but fast.

DeepMind's definition (``compute_surface_distances`` + ``compute_surface_dice_at_tolerance``):
surfels live on the corner grid shifted by half a voxel; each 2x2x2 corner cell whose 8
voxels are neither all in nor all out is a border point carrying the marching-cubes surfel
area of its configuration (anisotropic spacing aware). NSD at tolerance t is

    (area of ref border points within t of the pred border
     + area of pred border points within t of the ref border) / (total ref + pred area)

with distances measured between border points of the two corner grids (Euclidean, in mm).

How this is faster while giving the same value (checked against the package in tests):
  * everything happens on the bounding box of ``pred | ref`` plus padding, never the volume;
  * the 8-corner neighbour codes are built by bit-packing shifted slices (3 OR-of-shift
    passes over uint8) instead of a float ``ndimage.correlate``;
  * no distance transform: "within t" only needs the set of integer corner offsets whose
    length (computed exactly like SciPy's EDT: sqrt of summed squared offsets x spacing) is
    <= t. Each border point is tested against the other border by gathering at those
    offsets, nearest first, dropping points as soon as they hit. Good predictions hit at
    the first offsets, so the cost is about the number of border points, not the box size;
  * the codes, border indices and areas of each mask are computed once and reused for both
    directions. A very large tolerance (many offsets) falls back to SciPy's EDT on the box.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from benchmark.surfel_table import neighbour_code_to_surface_area as _area_table

# Above this many offsets the gather loop is slower than a distance transform on the box.
_MAX_GATHER_OFFSETS = 600


def bounding_box(*masks: np.ndarray) -> tuple[slice, ...] | None:
    """Smallest box (slices) containing the foreground of all 3D ``masks``; None if all empty."""
    lows, highs = [], []
    for mask in masks:
        plane = mask.any(axis=2)  # one full pass; axes 0 and 1 come from the small plane
        rows = np.flatnonzero(plane.any(axis=1))
        if rows.size == 0:
            continue
        cols = np.flatnonzero(plane.any(axis=0))
        sub = mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        depth = np.flatnonzero(sub.any(axis=(0, 1)))
        lows.append((rows[0], cols[0], depth[0]))
        highs.append((rows[-1], cols[-1], depth[-1]))
    if not lows:
        return None
    low, high = np.min(lows, axis=0), np.max(highs, axis=0)
    return tuple(slice(int(a), int(b) + 1) for a, b in zip(low, high))


def corner_codes(mask: np.ndarray, margin: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """8-bit neighbour code of every corner of the half-voxel-shifted grid of ``mask``.

    Args:
        mask: bool array [X, Y, Z]; voxels outside it count as background.
        margin: extra all-zero corners added on both sides of each axis.

    Returns:
        C-contiguous uint8 array [X + 1 + 2 m0, Y + 1 + 2 m1, Z + 1 + 2 m2]. Corner (i, j, k) (without
        margin) sits between voxels i-1..i, j-1..j, k-1..k; voxel (i-1+a, j-1+b, k-1+c) sets
        bit 7 - (4a + 2b + c), the bit order of DeepMind's correlation kernel.
    """
    # C order matters: border points are addressed by C-order flat index (nibabel gives F order)
    padded = np.pad(np.ascontiguousarray(mask, dtype=np.uint8), [(1 + m, 1 + m) for m in margin])
    code = (padded[:, :, :-1] << 1) | padded[:, :, 1:]
    code = (code[:, :-1] << 2) | code[:, 1:]
    return (code[:-1] << 4) | code[1:]


@lru_cache(maxsize=64)
def tolerance_offsets(spacing: tuple[float, float, float], tolerance_mm: float) -> np.ndarray:
    """Integer corner offsets within ``tolerance_mm``, nearest first, as int [n, 3].

    The length is computed like ``scipy.ndimage.distance_transform_edt`` does
    (sqrt(((d0 s0)^2 + (d1 s1)^2) + (d2 s2)^2) in float64) so ``<=`` ties agree with it.
    """
    radius = [int(np.floor(tolerance_mm / s)) for s in spacing]
    axes = [np.arange(-r, r + 1) for r in radius]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    scaled = grid.astype(np.float64) * np.asarray(spacing, dtype=np.float64)
    length = np.sqrt(np.add.reduce(scaled * scaled, axis=1))
    keep = length <= tolerance_mm
    order = np.argsort(length[keep], kind="stable")
    return grid[keep][order]


@lru_cache(maxsize=64)
def _cached_area_table(spacing: tuple[float, float, float]) -> np.ndarray:
    return _area_table(spacing)


class _Surface:
    """Border corners of one mask on a shared padded corner grid: flat indices and areas."""

    def __init__(self, mask: np.ndarray, margin: tuple[int, int, int], area_table: np.ndarray):
        self.codes = corner_codes(mask, margin)
        self.border = np.add(self.codes, 1, dtype=np.uint8) >= 2  # code not in {0, 255}
        self.index = np.flatnonzero(self.border)
        self.areas = area_table[self.codes.ravel()[self.index]]


def _hits_by_gather(source: _Surface, target: _Surface, offsets: np.ndarray) -> np.ndarray:
    """Bool [n_source_border]: border point has a target border point at one of ``offsets``."""
    shape = target.border.shape
    strides = np.array([shape[1] * shape[2], shape[2], 1], dtype=np.int64)  # C-order flat index steps
    flat_offsets = offsets @ strides
    target_flat = target.border.ravel()
    hit = np.zeros(source.index.size, dtype=bool)
    todo = np.arange(source.index.size)
    points = source.index
    for offset in flat_offsets:
        found = target_flat[points + offset]
        if found.any():
            hit[todo[found]] = True
            todo, points = todo[~found], points[~found]
            if todo.size == 0:
                break
    return hit


def _hits_by_edt(source: _Surface, target: _Surface, spacing, tolerance_mm: float) -> np.ndarray:
    from scipy import ndimage

    distance = ndimage.distance_transform_edt(~target.border, sampling=spacing)
    return distance.ravel()[source.index] <= tolerance_mm


def surface_dice(pred: np.ndarray, ref: np.ndarray, spacing, tolerance_mm: float = 2.0) -> float:
    """Area-weighted normalised surface Dice at ``tolerance_mm`` (DeepMind definition).

    Args:
        pred: bool (or 0/1) array [X, Y, Z], predicted mask.
        ref: array of the same shape, reference mask.
        spacing: voxel size (mm) along axes 0, 1, 2 (anisotropic allowed).
        tolerance_mm: distance (mm) under which surface points count as agreeing (``<=``).

    Returns:
        NSD in [0, 1]. Both masks empty -> 1.0 (perfect agreement, where DeepMind gives
        NaN); exactly one empty -> 0.0 (as DeepMind).
    """
    pred, ref = np.asarray(pred, dtype=bool), np.asarray(ref, dtype=bool)
    if pred.shape != ref.shape or pred.ndim != 3:
        raise ValueError(f"expected two 3D masks of equal shape, got {pred.shape} and {ref.shape}")
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != 3 or min(spacing) <= 0 or not tolerance_mm >= 0:
        raise ValueError(f"expected 3 positive spacings and a tolerance >= 0, got {spacing}, {tolerance_mm}")
    box = bounding_box(pred, ref)
    if box is None:
        return 1.0
    pred, ref = pred[box], ref[box]
    if not pred.any() or not ref.any():
        return 0.0
    offsets = tolerance_offsets(spacing, float(tolerance_mm))
    use_gather = len(offsets) <= _MAX_GATHER_OFFSETS
    margin = tuple(int(np.abs(offsets[:, axis]).max()) for axis in range(3)) if use_gather else (0, 0, 0)
    table = _cached_area_table(spacing)
    surf_pred, surf_ref = _Surface(pred, margin, table), _Surface(ref, margin, table)
    if use_gather:
        ref_hit = _hits_by_gather(surf_ref, surf_pred, offsets)
        pred_hit = _hits_by_gather(surf_pred, surf_ref, offsets)
    else:
        ref_hit = _hits_by_edt(surf_ref, surf_pred, spacing, tolerance_mm)
        pred_hit = _hits_by_edt(surf_pred, surf_ref, spacing, tolerance_mm)
    total = surf_ref.areas.sum() + surf_pred.areas.sum()
    within = surf_ref.areas[ref_hit].sum() + surf_pred.areas[pred_hit].sum()
    return float(within / total)
