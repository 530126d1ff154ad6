"""The one organ post-processing of predicted labels (numpy/scipy only, no torch).

As the DiffTumor evaluation (``validation.py``: tumor := predicted tumor AND organ
pseudo-label), with the target CT's organ label playing the pseudo-label: a tumor call is
kept only within ``ORGAN_MARGIN_MM`` of the *target* organ, whichever organ the model was
trained on. Unlike the official script the organ label itself stays the model's prediction
(its largest component(s)), so organ DSC keeps measuring the model, not the reference.
Without an organ mask (inference on an unlabeled CT) the predicted organ stands in.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

# Tumor voxels farther than this from the organ mask are removed. 0 mm = the paper's
# ``tumor AND organ``; the reference organ label includes its tumors, so a correct call is kept.
ORGAN_MARGIN_MM = 0.0
# Organ components at least this fraction of the largest are kept (two kidneys survive).
KEEP_FRACTION = 0.1


def keep_main_components(mask: np.ndarray, min_fraction: float = KEEP_FRACTION) -> np.ndarray:
    """Keep the largest 6-connected component and any other at least ``min_fraction`` of its
    size (two kidneys survive; small false-positive islands do not). (X, Y, Z) bool."""
    from scipy import ndimage

    components, n = ndimage.label(mask)
    if n <= 1:
        return mask.astype(bool)
    sizes = np.bincount(components.ravel())[1:]
    keep = np.flatnonzero(sizes >= min_fraction * sizes.max()) + 1
    return np.isin(components, keep)


def postprocess(labels: np.ndarray, spacing: Sequence[float], organ_mask: np.ndarray | None = None,
                margin_mm: float = ORGAN_MARGIN_MM) -> np.ndarray:
    """Organ post-processing of (X, Y, Z) 0/1/2 labels.

    Args:
        labels: predicted labels.
        spacing: voxel size (mm).
        organ_mask: the target organ (reference ``labels >= 1`` of the CT, the paper's
            pseudo-label); None: the main component(s) of the predicted organ + tumor.
        margin_mm: largest distance (mm) of a kept tumor voxel from the organ region;
            ``math.inf`` keeps every tumor voxel (no organ filter).

    Returns:
        uint8 (X, Y, Z): organ = predicted organ in its main component(s); tumor = predicted
        tumor within ``margin_mm`` of the organ region.
    """
    from scipy import ndimage

    labels = np.asarray(labels, dtype=np.uint8)
    main = keep_main_components(labels > 0)
    region = main if organ_mask is None else np.asarray(organ_mask) > 0
    if organ_mask is not None and region.shape != labels.shape:
        raise ValueError(f"organ mask has shape {region.shape}, expected the prediction's {labels.shape}")
    if margin_mm == float("inf"):
        region = np.ones_like(region)
    elif margin_mm > 0 and region.any():
        region = ndimage.distance_transform_edt(~region, sampling=[float(s) for s in spacing]) <= margin_mm
    out = np.zeros_like(labels)
    out[(labels == 1) & main] = 1
    out[(labels == 2) & region] = 2
    return out
