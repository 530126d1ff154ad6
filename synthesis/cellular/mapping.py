"""Automaton state -> HU and tumor label (Pixel2Cancer's mapping, on the tumor's box only).

P is the state with dead cells counted full, blurred with [1/4, 1/2, 1/4] in the two in-plane
axes of each slice along array axis 0 (the released OpenCV 3x3 blur); T is a Hu et al. texture.
In order: vessels inside the tumor and dense tissue are scaled down, pancreatic fat inside the
tumor is filled, the tumor is darkened by T * d1 * P / 10, the necrotic core gets T * d2 * N
back (N: blurred dead-cell indicator), and the result is smoothed where the organ asks for it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

from synthesis.cellular.params import THRESHOLD, CellularParams, OrganRules
from synthesis.texture import hu_texture

_BLUR = np.asarray([0.25, 0.5, 0.25], np.float32)
MARGIN = 2  # the blur reaches 1 voxel; 2 keeps the reflected border outside the tumor too


def blur_slices(values: np.ndarray) -> np.ndarray:
    """3x3 binomial blur of each 2-D slice along axis 0 (OpenCV's border = scipy's 'mirror')."""
    out = ndimage.correlate1d(values, _BLUR, axis=1, mode="mirror")
    return ndimage.correlate1d(out, _BLUR, axis=2, mode="mirror")


def tumor_states(state: np.ndarray, organ: np.ndarray, rules: OrganRules) -> np.ndarray:
    """Population per voxel, boundary states and everything outside the organ zeroed."""
    return np.where(organ & (state < rules.outrange), state, 0).astype(np.int32)


def _box(mask: np.ndarray) -> tuple[slice, ...]:
    index = np.argwhere(mask)
    lo, hi = index.min(0) - MARGIN, index.max(0) + 1 + MARGIN
    return tuple(slice(int(max(a, 0)), int(min(b, n))) for a, b, n in zip(lo, hi, mask.shape))


def _darken(hu: np.ndarray, states: np.ndarray, density: np.ndarray, params: CellularParams,
            rules: OrganRules, spacing: Sequence[float]) -> np.ndarray:
    """The mapping on one box (float32 HU in, new float32 HU out)."""
    population = blur_slices(np.where(states == -1, THRESHOLD, states).astype(np.float32))
    necrotic = blur_slices((states == -1).astype(np.float32))
    texture = hu_texture(hu.shape, spacing, params.sigma_a_mm, params.sigma_b_mm, params.scale, params.base,
                         params.u0, np.random.default_rng(params.texture_seed))
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


def map_to_hu(ct: np.ndarray, organ: np.ndarray, state: np.ndarray, density: np.ndarray,
              params: CellularParams, rules: OrganRules) -> tuple[np.ndarray, np.ndarray]:
    """(new CT float32, tumor label bool) for one organ box; changes stay on organ voxels.

    The label is organ AND state != 0: viable and necrotic cells (the released code lost the
    necrotic ones, see docs/generators.md).
    """
    states = tumor_states(state, organ, rules)
    label = states != 0
    out = np.array(ct, np.float32, copy=True)
    if not label.any():
        return out, label
    box = _box(label)
    hu = _darken(out[box], states[box], density[box], params, rules, params.spacing)
    out[box] = np.where(organ[box], hu, out[box])
    return out, label
