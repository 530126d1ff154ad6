"""Elastically deformed ellipsoids (the tumor shape model of Hu et al. / DiffTumor), scipy only.

The reference builds a filled ellipsoid in a ``(4rx, 4ry, 4rz)`` canvas and deforms it three
times with ``elasticdeform.deform_random_grid(sigma, points=3, order=0)`` on the axis pairs
(0,1), (1,2), (0,2). Each deformation draws a random displacement per control point of a 3x3
grid spanning the canvas plane, upsamples it with a cubic B-spline (elasticdeform's: mirror
boundary, tested against its formula) and resamples the mask with nearest neighbour:
``out[p] = in[round(p + d(p))]`` (0 outside the canvas). Differences from elasticdeform: numpy's
``Generator`` instead of the global ``np.random`` (so the same seed gives other shapes), and
ties at exactly .5 voxel round to even instead of up.

Instead of resampling the whole canvas three times we compose the three coordinate maps and
evaluate the ellipsoid inequality analytically, only on the part of the canvas the deformed
shape can reach (ellipsoid + largest displacement). The result is the same voxel set as the
three sequential nearest-neighbour resamplings, at a fraction of the cost.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np
from scipy import ndimage

from synthesis import shape_kernels

#: Axis pairs in the order the reference applies them.
DEFORM_PLANES = ((0, 1), (1, 2), (0, 2))
CONTROL_POINTS = 3


@lru_cache(maxsize=512)
def _spline_matrix(n_out: int, points: int) -> np.ndarray:
    """(n_out, points) weights of cubic-spline interpolation from ``points`` evenly spaced
    control points spanning [0, n_out - 1] (spline interpolation is linear in the data).

    As elasticdeform: the control displacements are prefiltered (``spline_filter1d``, order 3,
    mirror boundary) and the B-spline is evaluated at ``(points - 1) * i / (n_out - 1)`` with
    mirrored control indices at the edges."""
    coords = np.linspace(0.0, points - 1.0, n_out)[None]
    columns = [ndimage.map_coordinates(np.eye(points)[j], coords, order=3, mode="mirror")
               for j in range(points)]
    return np.stack(columns, axis=1)


def plane_displacements(canvas: Sequence[int], sigma_vox: Sequence[float],
                        rng: np.random.Generator) -> list[np.ndarray]:
    """Smooth random displacement fields for the three planes.

    Args:
        canvas: (3,) canvas shape in voxels.
        sigma_vox: (3,) displacement std per axis in voxels (control-point displacements).
        rng: source of the control-point displacements.

    Returns:
        For each plane (a, b) in ``DEFORM_PLANES``: float32 array (2, n_a, n_b), the
        displacement along a and along b, in voxels.
    """
    # one draw for the three planes (the same numbers as three draws, one per plane)
    controls = rng.standard_normal((len(DEFORM_PLANES), 2, CONTROL_POINTS, CONTROL_POINTS))
    splines = [_spline_matrix(int(n), CONTROL_POINTS) for n in canvas]
    return list(shape_kernels.plane_fields(controls, np.asarray(sigma_vox, np.float64), *splines))


def deformed_ellipsoid(radii_vox: Sequence[float], sigma_vox: Sequence[float],
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Filled ellipsoid deformed elastically on the three planes.

    Args:
        radii_vox: (3,) semi-axes in voxels (may be fractional, anisotropic spacing).
        sigma_vox: (3,) elastic displacement std per axis in voxels.
        rng: source of the deformation.

    Returns:
        (mask, offset): bool array (a, b, c) with the deformed shape, and the (3,) int
        offset of ``mask[0, 0, 0]`` relative to the ellipsoid centre voxel.
    """
    radii = np.maximum(np.asarray(radii_vox, float), 0.5)
    canvas = [max(4, int(np.ceil(4 * r))) for r in radii]
    out, lo = shape_kernels.deformed_mask(*plane_displacements(canvas, sigma_vox, rng), radii)
    return out, lo - np.asarray(canvas) // 2
