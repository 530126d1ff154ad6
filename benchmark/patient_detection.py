"""Patient-level tumor call by the official DiffTumor rule, in physical units.

DiffTumor ``direct_inference/Segmentation2BinaryLabels.py::detection`` (see
/work/shared/reference/notes/difftumor_official.md §4): tumor AND organ, resampled to 1 mm
(nearest), eroded with a 3x3x3 structure; the patient is positive when the remaining volume is
**> th mm³**. The official argparse default is ``th = 70``; its README example runs ``--th 30``.
We default to 70 (what the script does when no flag is given) and let the grid set it
(``[evaluate] patient_threshold_mm3``). Resampling to 1 mm first makes the erosion a fixed 1 mm
whatever the scan's spacing, so the same physical prediction gets the same call on any grid.
"""
from __future__ import annotations

import numpy as np

from benchmark.surface import bounding_box

PATIENT_THRESHOLD_MM3 = 70.0  # official argparse default; the official README example uses 30
OFFICIAL_SPACING_MM = (1.0, 1.0, 1.0)


def eroded_tumor_mm3(tumor: np.ndarray, organ: np.ndarray, spacing) -> float:
    """Volume (mm³) of ``tumor & organ`` left after the official 1 mm resampling + 3x3x3 erosion.

    Args:
        tumor, organ: bool arrays [X, Y, Z] on the same grid. spacing: its voxel size (mm).
    """
    from scipy import ndimage

    from benchmark.data.resample import resample_to_spacing

    mask = np.asarray(tumor, dtype=bool) & np.asarray(organ, dtype=bool)
    box = bounding_box(mask)
    if box is None:
        return 0.0
    # one empty voxel around the box: the erosion sees background beyond the tumor, never an edge
    crop = np.pad(mask[box], 1).astype(np.uint8)
    affine = np.diag([*(float(s) for s in spacing), 1.0])
    at_1mm, _ = resample_to_spacing(crop, affine, OFFICIAL_SPACING_MM, order=0)
    eroded = ndimage.binary_erosion(at_1mm.astype(bool), structure=np.ones((3, 3, 3), dtype=bool))
    return float(eroded.sum()) * float(np.prod(OFFICIAL_SPACING_MM))


def patient_call(tumor: np.ndarray, organ: np.ndarray, spacing,
                 threshold_mm3: float = PATIENT_THRESHOLD_MM3) -> tuple[bool, float]:
    """(positive, eroded volume mm³): positive when the eroded volume is > ``threshold_mm3``."""
    volume = eroded_tumor_mm3(tumor, organ, spacing)
    return volume > threshold_mm3, volume
