"""Reorientation to RAS and resampling to a target voxel spacing (image linear, labels nearest)."""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def voxel_spacing(affine: np.ndarray) -> np.ndarray:
    """Voxel size (mm) along each array axis: norms of the affine's columns."""
    return np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))


def resample_to_spacing(array: np.ndarray, affine: np.ndarray, spacing, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Resample a (RAS-oriented) volume to ``spacing`` mm, keeping its field of view.

    The new grid starts at the same outer voxel edge as the old one (edge-aligned), so the world
    position of anatomy is kept. Equal to MONAI ``Spacing(pixdim, scale_extent=True,
    padding_mode="border")`` (float32 rounding; ``align_corners`` plays no part) where each axis
    spans a whole number of target voxels and no nearest-neighbour sample is a tie; otherwise
    MONAI shifts the grid by ``0.5 * (n_old / n_new - new / old)`` old voxels and breaks label
    ties either way (tests/test_data_resample.py). Kept hand-written: 7x faster, 10x less memory
    (docs/contracts.md, ``tumorbench perf resample``).

    Args:
        array: (nx, ny, nz) volume. affine: its 4x4 voxel->world matrix.
        spacing: target (sx, sy, sz) mm. order: 1 for images (trilinear), 0 for labels (nearest).

    Returns:
        (resampled array, new affine). float32 for order 1, the input dtype for order 0.
    """
    old = voxel_spacing(affine)
    scale = np.asarray(spacing, dtype=float) / old  # old voxels per new voxel
    if np.allclose(scale, 1.0, atol=1e-6):
        return (array.astype(np.float32) if order else array), np.asarray(affine, dtype=float)
    new_shape = tuple(max(1, int(round(n / s))) for n, s in zip(array.shape, scale))
    offset = 0.5 * scale - 0.5  # centre of new voxel 0, in old voxel coordinates
    out_dtype = np.float32 if order else array.dtype
    source = array.astype(np.float32) if order else array
    resampled = ndi.affine_transform(source, scale, offset=offset, output_shape=new_shape, order=order,
                                     mode="nearest", prefilter=False, output=out_dtype)
    step = np.eye(4)
    step[:3, :3] = np.diag(scale)
    step[:3, 3] = offset
    return resampled, np.asarray(affine, dtype=float) @ step


def to_ras(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flip/permute ``array`` to the closest RAS+ axes, like ``nib.as_closest_canonical``.

    Works on an already-loaded array, so the caller controls its dtype (nibabel's own
    reorientation reads the data as float64 when the file has a scale/intercept).
    """
    from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation

    ornt = io_orientation(affine)
    if np.array_equal(ornt, [[0, 1], [1, 1], [2, 1]]):
        return array, np.asarray(affine, dtype=float)
    return apply_orientation(array, ornt), np.asarray(affine, dtype=float) @ inv_ornt_aff(ornt, array.shape)
