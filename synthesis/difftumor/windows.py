"""Model windows of the DiffTumor generator: the crops of the model's size around a tumor's
ellipsoids (grouped so that every ellipsoid lies in one), taken edge-padded from a CT and put back,
and resampling between the CT's grid and the checkpoint's."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

from synthesis import geometry


def zoom_to(array: np.ndarray, shape: Sequence[int], order: int) -> np.ndarray:
    """``array`` resampled (spline ``order``, corners aligned) to exactly ``shape``."""
    factors = [n / m for n, m in zip(shape, array.shape)]
    return ndimage.zoom(array, factors, order=order, mode="nearest").astype(array.dtype, copy=False)


def render_in_windows(organ: np.ndarray, spacing: Sequence[float], geom: geometry.TumorGeometry,
                      size: Sequence[int]) -> tuple[np.ndarray, tuple[tuple[int, int, int], ...]]:
    """(tumor mask the windows cover, window starts): the ellipsoids are grouped greedily, in
    their order, into groups whose bounding box fits one ``size`` window; each group gets the
    window centred on its box. Deterministic from the geometry (replay recomputes it)."""
    parts = geometry.render_tumor_parts(organ, spacing, geom)
    groups: list[list[np.ndarray]] = []  # [lo, hi) of each group's box
    for box, _ in parts:
        lo, hi = np.asarray([s.start for s in box]), np.asarray([s.stop for s in box])
        for group in groups:
            joint_lo, joint_hi = np.minimum(group[0], lo), np.maximum(group[1], hi)
            if np.all(joint_hi - joint_lo <= np.asarray(size)):
                group[:] = [joint_lo, joint_hi]
                break
        else:
            groups.append([lo, hi])
    full = np.zeros(organ.shape, bool)
    for box, part in parts:
        full[box] |= part
    if not groups:
        return full, (window_start(full, size),)
    starts = tuple(_box_window_start(lo, hi, size, organ.shape) for lo, hi in groups)
    covered = np.zeros(organ.shape, bool)
    for start in starts:
        put_window(covered, start, np.ones(tuple(size), bool))
    return full & covered, starts


def window_start(mask: np.ndarray, size: Sequence[int]) -> tuple[int, ...]:
    """Start voxel of the ``size`` window centred on the mask's bounding box, kept inside the
    volume where it fits (negative where the volume is smaller: that part is padded)."""
    coords = np.argwhere(mask)
    if not len(coords):
        return _box_window_start(np.zeros(3, int), np.asarray(mask.shape), size, mask.shape)
    return _box_window_start(coords.min(0), coords.max(0) + 1, size, mask.shape)


def _box_window_start(lo, hi, size: Sequence[int], shape: Sequence[int]) -> tuple[int, ...]:
    """``window_start`` for the box [lo, hi)."""
    center = (np.asarray(lo) + np.asarray(hi)) // 2
    starts = []
    for c, s, extent in zip(center, size, shape):
        start = int(c) - s // 2
        starts.append(min(max(start, 0), extent - s) if extent >= s else (extent - s) // 2)
    return tuple(starts)


def _window_slices(start: Sequence[int], size: Sequence[int], shape: Sequence[int]):
    src = tuple(slice(max(b, 0), min(b + s, n)) for b, s, n in zip(start, size, shape))
    dst = tuple(slice(sl.start - b, sl.stop - b) for sl, b in zip(src, start))
    return src, dst


def take_window(array: np.ndarray, start: Sequence[int], size: Sequence[int]) -> np.ndarray:
    """``size`` window at ``start``; outside the array edge values are repeated."""
    src, _ = _window_slices(start, size, array.shape)
    part = array[src]
    pads = [(sl.start - b, b + s - sl.stop) for sl, b, s in zip(src, start, size)]
    return np.pad(part, pads, mode="edge") if any(p for pair in pads for p in pair) else part.copy()


def put_window(target: np.ndarray, start: Sequence[int], window: np.ndarray) -> None:
    """Write the in-bounds part of ``window`` back into ``target`` (in place)."""
    src, dst = _window_slices(start, window.shape, target.shape)
    target[src] = window[dst]
