"""Automaton state -> HU and tumor label (Pixel2Cancer's mapping, on the tumor's box only).

P is the state with dead cells counted full, blurred with [1/4, 1/2, 1/4] in the two in-plane
axes of each slice along array axis 0 (the released OpenCV 3x3 blur); T is a Hu et al. texture.
In order: vessels inside the tumor and dense tissue are scaled down, pancreatic fat inside the
tumor is filled, the tumor is darkened by T * d1 * P / 10, the necrotic core gets T * d2 * N
back (N: blurred dead-cell indicator), and the result is smoothed where the organ asks for it.
"""
from __future__ import annotations

from typing import Sequence

import numba as nb
import numpy as np
from scipy import ndimage

from synthesis.cellular.params import THRESHOLD, CellularParams, OrganRules
from synthesis.texture import texture_strip

_BLUR = np.asarray([0.25, 0.5, 0.25], np.float32)
MARGIN = 2  # the blur reaches 1 voxel; 2 keeps the reflected border outside the tumor too
TILE = 4  # tumor boxes are unions of TILE^3 tiles (cheap to find on a large organ box)


def blur_slices(values: np.ndarray) -> np.ndarray:
    """3x3 binomial blur of each 2-D slice along axis 0 (OpenCV's border = scipy's 'mirror')."""
    out = ndimage.correlate1d(values, _BLUR, axis=1, mode="mirror")
    return ndimage.correlate1d(out, _BLUR, axis=2, mode="mirror")


@nb.njit(cache=True)
def _label_and_tiles(state, organ, outrange, tile):
    """Tumor label (organ, 0 != state < outrange) and per-tile flags of it, in one pass."""
    label = np.zeros(state.shape, np.bool_)
    flags = np.zeros(((state.shape[0] + tile - 1) // tile, (state.shape[1] + tile - 1) // tile,
                      (state.shape[2] + tile - 1) // tile), np.bool_)
    for x in range(state.shape[0]):
        for y in range(state.shape[1]):
            for z in range(state.shape[2]):
                s = state[x, y, z]
                if organ[x, y, z] and s != 0 and s < outrange:
                    label[x, y, z] = True
                    flags[x // tile, y // tile, z // tile] = True
    return label, flags


def tumor_boxes(flags: np.ndarray, shape: Sequence[int]) -> list[tuple[slice, ...]]:
    """Disjoint boxes (tumor tiles' bounding boxes + MARGIN, overlapping ones merged) that hold
    every tumor voxel: a multifocal tumor is mapped focus by focus, not on the whole organ box."""
    components, count = ndimage.label(flags, structure=np.ones((3, 3, 3), bool))
    boxes = [[[max(s.start * TILE - MARGIN, 0) for s in found], [min(s.stop * TILE + MARGIN, n) for s, n in
                                                                  zip(found, shape)]]
             for found in ndimage.find_objects(components)[:count]]
    merged = True
    while merged:
        merged = False
        for a in range(len(boxes)):
            for b in range(a + 1, len(boxes)):
                (lo_a, hi_a), (lo_b, hi_b) = boxes[a], boxes[b]
                if all(x < y for x, y in zip(lo_a, hi_b)) and all(x < y for x, y in zip(lo_b, hi_a)):
                    boxes[a] = [[min(x, y) for x, y in zip(lo_a, lo_b)], [max(x, y) for x, y in zip(hi_a, hi_b)]]
                    del boxes[b]
                    merged = True
                    break
            if merged:
                break
    return [tuple(slice(a, b) for a, b in zip(lo, hi)) for lo, hi in boxes]


def _darken(hu: np.ndarray, states: np.ndarray, density: np.ndarray, texture: np.ndarray, params: CellularParams,
            rules: OrganRules) -> np.ndarray:
    """The mapping on one box (float32 HU in, new float32 HU out; states: tumor cells only)."""
    population = blur_slices(np.where(states == -1, THRESHOLD, states).astype(np.float32))
    necrotic = blur_slices((states == -1).astype(np.float32))
    inside = population > 0
    hu = hu.copy()
    hu[(density >= rules.outrange) & (population >= 5)] *= np.float32((rules.lower + 10) / rules.outrange)
    hu[(density == rules.lower + 40) & inside] *= np.float32((rules.lower + 40) / rules.outrange)
    fat = (hu <= 65) & inside if rules.fat_fill else np.zeros(hu.shape, bool)
    if fat.any():
        fill = np.float32(params.fat_fill_factor * float(hu[inside].mean()))
        hu[fat] += (texture * fill * population / THRESHOLD)[fat]
    hu -= texture * np.float32(params.darken_hu) * population / THRESHOLD
    hu += texture * np.float32(params.necrosis_hu) * necrotic
    if rules.smooth != "none":
        smoothed = blur_slices(np.where(inside, hu, 0).astype(np.float32))
        region = (population >= 5) & (density >= rules.lower + 40)
        if rules.smooth == "tissue+fat":
            region |= (population >= 5) & (fat | (hu < 0))
        hu[region] = smoothed[region]
    return hu


def map_to_hu_(ct: np.ndarray, organ: np.ndarray, state: np.ndarray, density: np.ndarray,
               params: CellularParams, rules: OrganRules) -> np.ndarray:
    """Write the tumor into ``ct`` (float32, one organ box, a view) IN PLACE; returns the bool
    tumor label. Changes stay on organ voxels.

    The label is organ AND state != 0: viable and necrotic cells (the released code lost the
    necrotic ones, see docs/generators.md). Each focus box gets its part of one texture strip.
    """
    return map_to_hu_boxes_(ct, organ, state, density, params, rules)[0]


def map_to_hu_boxes_(ct: np.ndarray, organ: np.ndarray, state: np.ndarray, density: np.ndarray,
                     params: CellularParams, rules: OrganRules) -> tuple[np.ndarray, list[tuple[slice, ...]]]:
    """``map_to_hu_`` that also returns the focus boxes: they hold every tumor voxel and every
    changed voxel (the box-local output's pieces)."""
    label, flags = _label_and_tiles(state, organ, rules.outrange, TILE)
    boxes = tumor_boxes(flags, label.shape)
    if not boxes:
        return label, boxes
    textures, gain = texture_strip([[s.stop - s.start for s in box] for box in boxes], params.spacing,
                                   params.sigma_a_mm, params.sigma_b_mm, params.scale, params.base, params.u0,
                                   np.random.default_rng(params.texture_seed))
    for box, field in zip(boxes, textures):
        states = np.where(label[box], state[box], 0).astype(np.int32)
        texture = np.clip(field * np.float32(gain), 0.0, 1.0)
        hu = _darken(ct[box], states, density[box], texture, params, rules)
        ct[box] = np.where(organ[box], hu, ct[box])
    return label, boxes
