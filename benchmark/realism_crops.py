"""Tumor geometry helpers for the realism analysis: size types, components, crop boxes.

Arrays are (X, Y, Z) with spacing (sx, sy, sz) in mm. Lesions, radii and size bins follow the
evaluation's definitions (benchmark/lesions.py: 26-connected components, equivalent-sphere
radius, bins 0-5/5-10/10-15/15-20/20+ mm, early = radius <= 10 mm), so a "5-10 mm real tumor"
here is the same object the tumor-wise sensitivity counts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from benchmark.lesions import EARLY_RADIUS_MM, equivalent_radius_mm, size_bin  # noqa: F401 (re-exported)

SIZE_TYPES = ("tiny", "small", "medium", "large")


@dataclass(frozen=True)
class CropSettings:
    """ROI margin (voxels) around a tumor; context window (mm) shown in reader studies."""

    roi_margin_vox: int = 3
    context_inplane_mm: float = 128.0
    context_z_margin_mm: float = 12.0
    min_voxels: int = 8


def size_type_for_radius(radius_mm: float) -> str:
    """Generator size type closest to a real tumor (Hu/DiffTumor base radii 4/8/16/32 mm)."""
    if radius_mm <= 6:
        return "tiny"
    if radius_mm <= 12:
        return "small"
    return "medium" if radius_mm <= 24 else "large"


def equivalent_radius(n_voxels: int, spacing: Sequence[float]) -> float:
    """Equivalent-sphere radius (mm) of ``n_voxels`` voxels of ``spacing`` (mm)."""
    return float(equivalent_radius_mm(n_voxels * float(np.prod(spacing))))


def components(mask: np.ndarray, min_voxels: int) -> list[np.ndarray]:
    """26-connected components of a bool (X, Y, Z) mask (as the evaluation's lesions), each as a
    bool array; components under ``min_voxels`` are dropped."""
    from scipy import ndimage

    labelled, count = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(labelled.ravel())
    return [labelled == k for k in range(1, count + 1) if sizes[k] >= min_voxels]


def _box(lo: np.ndarray, hi: np.ndarray, shape: Sequence[int]) -> tuple[slice, ...]:
    lo = np.clip(lo, 0, np.asarray(shape))
    hi = np.clip(hi, 0, np.asarray(shape))
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def roi_box(tumor: np.ndarray, margin: int) -> tuple[slice, ...]:
    idx = np.argwhere(tumor)
    return _box(idx.min(0) - margin, idx.max(0) + 1 + margin, tumor.shape)


def context_box(tumor: np.ndarray, spacing: Sequence[float], settings: CropSettings) -> tuple[slice, ...]:
    """Fixed in-plane window centred on the tumor (shifted to stay inside), tumor z-range + margin."""
    idx = np.argwhere(tumor)
    centre = (idx.min(0) + idx.max(0)) / 2
    half = [settings.context_inplane_mm / 2 / spacing[a] for a in (0, 1)]
    lo = [int(np.clip(round(centre[a] - half[a]), 0, max(0, tumor.shape[a] - 2 * half[a]))) for a in (0, 1)]
    hi = [int(min(tumor.shape[a], lo[a] + round(2 * half[a]))) for a in (0, 1)]
    zm = int(round(settings.context_z_margin_mm / spacing[2]))
    return _box(np.array(lo + [idx[:, 2].min() - zm]), np.array(hi + [idx[:, 2].max() + 1 + zm]), tumor.shape)
