"""Tumor-wise detection: connected lesions, equivalent-sphere radius, size bins, hits.

Conventions (after Hu et al. issue #8 and DiffTumor ``data_transfer.py``/``postprocess.py``):
  * a lesion is a 26-connected component of the tumor mask (``scipy.ndimage.label`` with a
    3x3x3 structure), in the reference and in the prediction alike;
  * components smaller than ``min_lesion_mm3`` (default 8 mm³) are ignored on both sides.
    DiffTumor skips reference components under 8 voxels of its 1 mm grid, i.e. 8 mm³; we keep
    the volume, not the voxel count, so a 3 mm grid (27 mm³ voxels) loses no small lesion and
    no small overlapping prediction (specks in the prediction are noise);
  * ``volume_mm3`` = voxel count x voxel volume (float, not truncated to int);
    ``radius_mm`` = (3 V / 4 pi)^(1/3), the radius of the sphere of the same volume;
  * size bins on the radius (``tumorbench_common.cohorts``): [0,5) "0-5", [5,10) "5-10", [10,15)
    "10-15", [15,20) "15-20", >= 20 "20+"; an early tumor has radius <= 10 mm (diameter <= 2 cm);
  * a reference lesion is detected when it shares at least one voxel with a kept predicted
    component; a false positive is a kept predicted component touching no reference lesion
    voxel (any reference tumor voxel, including ignored specks);
  * ``centroid_vox`` is the centre of mass in voxel coordinates (floats, array axis order).
"""
from __future__ import annotations

import math

import numpy as np

from benchmark.surface import bounding_box
from tumorbench_common.cohorts import EARLY_RADIUS_MM, SIZE_BINS, is_early, size_bin  # noqa: F401 (re-exported)

# 8 voxels of DiffTumor's 1 mm grid (data_transfer.py), as a volume so that it means the same on any grid
DEFAULT_MIN_LESION_MM3 = 8.0


def equivalent_radius_mm(volume_mm3: float) -> float:
    """Radius (mm) of the sphere whose volume is ``volume_mm3``."""
    return (3.0 * volume_mm3 / (4.0 * math.pi)) ** (1.0 / 3.0)


Component = tuple[int, tuple[slice, ...], int]  # (label, bounding slices, voxel count)


def label_components(mask: np.ndarray, min_voxels: float = 1) -> tuple[np.ndarray, list[Component]]:
    """26-connected components of ``mask`` with at least ``min_voxels`` voxels (a float: a
    volume threshold divided by the voxel volume).

    Returns:
        (int32 label array [mask.shape], [(label, bounding slices, voxel count), ...]).
    """
    from scipy import ndimage

    labels, count = ndimage.label(np.asarray(mask, dtype=bool), structure=np.ones((3, 3, 3), dtype=bool))
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    components = [(index, box, int(sizes[index])) for index, box in enumerate(ndimage.find_objects(labels), start=1)
                  if box is not None and sizes[index] >= min_voxels]
    return labels, components


def _record(labels: np.ndarray, index: int, box: tuple[slice, ...], voxels: int, voxel_mm3: float,
            detected: bool | None) -> dict:
    """Lesion record; ``detected=None`` makes a false-positive record (no bin, no flag)."""
    inside = np.argwhere(labels[box] == index)
    centroid = inside.mean(axis=0) + np.array([s.start for s in box])
    volume = voxels * voxel_mm3
    radius = equivalent_radius_mm(volume)
    record = {"volume_mm3": float(volume), "radius_mm": float(radius)}
    if detected is not None:
        record.update(size_bin=size_bin(radius), detected=detected)
    record["centroid_vox"] = [float(c) for c in centroid]
    return record


def detect_lesions(pred: np.ndarray, ref: np.ndarray, spacing,
                   min_lesion_mm3: float = DEFAULT_MIN_LESION_MM3) -> dict:
    """Match reference lesions with predicted tumor components.

    Args:
        pred: bool array [X, Y, Z], predicted tumor mask.
        ref: bool array [X, Y, Z], reference tumor mask.
        spacing: voxel size (mm) along the 3 axes.
        min_lesion_mm3: components of a smaller volume (mm³) are ignored on both sides.

    Returns:
        {"lesions": [{"volume_mm3", "radius_mm", "size_bin", "detected", "centroid_vox"}],
         "false_positives": [{"volume_mm3", "radius_mm", "centroid_vox"}],
         "n_pred_components": number of kept predicted components}; lesions in label order
        (raster order of their first voxel).
    """
    pred, ref = np.asarray(pred, dtype=bool), np.asarray(ref, dtype=bool)
    if pred.shape != ref.shape:
        raise ValueError(f"pred and ref shapes differ: {pred.shape} vs {ref.shape}")
    box = bounding_box(pred, ref)  # labelling only the tumors' box is much cheaper
    if box is None:
        return {"lesions": [], "false_positives": [], "n_pred_components": 0}
    found = _detect_in_box(pred[box], ref[box], spacing, min_lesion_mm3)
    origin = np.array([s.start for s in box], dtype=float)
    for record in found["lesions"] + found["false_positives"]:
        record["centroid_vox"] = [float(c) for c in np.asarray(record["centroid_vox"]) + origin]
    return found


def _detect_in_box(pred: np.ndarray, ref: np.ndarray, spacing, min_lesion_mm3: float) -> dict:
    voxel_mm3 = float(np.prod([float(s) for s in spacing]))
    min_voxels = min_lesion_mm3 / voxel_mm3 * (1 - 1e-9)  # a lesion of exactly min_lesion_mm3 counts
    pred_labels, pred_components = label_components(pred, min_voxels)
    kept_pred = np.zeros(pred.shape, dtype=bool)
    for index, box, _ in pred_components:
        kept_pred[box] |= pred_labels[box] == index
    ref_labels, ref_components = label_components(ref, min_voxels)
    lesions = []
    for index, box, voxels in ref_components:
        detected = bool(kept_pred[box][ref_labels[box] == index].any())
        lesions.append(_record(ref_labels, index, box, voxels, voxel_mm3, detected))
    false_positives = []
    for index, box, voxels in pred_components:
        if not ref[box][pred_labels[box] == index].any():
            false_positives.append(_record(pred_labels, index, box, voxels, voxel_mm3, None))
    return {"lesions": lesions, "false_positives": false_positives, "n_pred_components": len(pred_components)}
