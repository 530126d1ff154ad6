"""Training crops from item dicts: load CTs/labels, split tumors into early / non-early, crop.

Items are plain dicts ``{"case_id", "image", "label", "healthy", ...}``; ``image`` / ``label``
are NIfTI paths or already-loaded arrays (then ``"spacing"`` gives the voxel size in mm).
Labels: 0 background, 1 organ, 2 tumor.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy import ndimage

from synthesis.difftumor.autoencoder import hu_to_unit
from synthesis.errors import SynthesisInputError

MIN_COMPONENT_VOXELS = 8  # official filter_liver_early_tumor skips smaller components


@dataclass(frozen=True)
class Volume:
    """One case in memory: ``image`` (X, Y, Z) float16 in [-1, 1], ``label`` (X, Y, Z) uint8 where
    2 marks only the tumors of the requested stage (the others count as organ, 1)."""

    case_id: str
    image: np.ndarray
    label: np.ndarray


def load_item(item: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """(ct HU float32, labels uint8, spacing mm) of an item; clear error on unreadable files."""
    image, label = item.get("image"), item.get("label")
    if isinstance(image, np.ndarray):
        spacing = tuple(float(s) for s in item.get("spacing", (1.0, 1.0, 1.0)))
        return image.astype(np.float32), np.asarray(label, dtype=np.uint8), spacing
    import nibabel as nib

    try:
        ct_img, label_img = nib.load(str(image)), nib.load(str(label))
        ct = np.asarray(ct_img.dataobj, dtype=np.float32)
        lab = np.asarray(label_img.dataobj).astype(np.uint8)
    except Exception as exc:  # nibabel raises many types for missing / corrupt files
        raise SynthesisInputError(f"case {item.get('case_id')}: cannot read {image} / {label} ({exc})") from exc
    if ct.shape != lab.shape:
        raise SynthesisInputError(f"{label}: shape {lab.shape} differs from the CT {ct.shape}")
    return ct, lab, tuple(float(s) for s in ct_img.header.get_zooms()[:3])


def equivalent_radii_mm(tumor: np.ndarray, spacing: Sequence[float]) -> tuple[np.ndarray, list[float]]:
    """Connected tumor components (6-connectivity) and their equivalent-sphere radii in mm."""
    components, count = ndimage.label(tumor)
    sizes = np.bincount(components.ravel(), minlength=count + 1)[1:]
    voxel_mm3 = float(np.prod(spacing))
    radii = [float((size * voxel_mm3 * 3.0 / (4.0 * np.pi)) ** (1.0 / 3.0)) for size in sizes]
    return components, radii


def stage_label(label: np.ndarray, spacing: Sequence[float], stage: str | None, early_radius_mm: float) -> np.ndarray:
    """Relabel: keep 2 on tumors of ``stage`` (early: radius <= early_radius_mm), others -> 1.

    ``stage=None`` keeps every tumor with at least MIN_COMPONENT_VOXELS voxels.
    """
    components, radii = equivalent_radii_mm(label == 2, spacing)
    sizes = np.bincount(components.ravel(), minlength=len(radii) + 1)
    keep = np.zeros(len(radii) + 1, dtype=bool)
    for index, radius in enumerate(radii, start=1):
        big_enough = sizes[index] >= MIN_COMPONENT_VOXELS
        in_stage = stage is None or (radius <= early_radius_mm) == (stage == "early")
        keep[index] = big_enough and in_stage
    out = np.where(label > 0, 1, 0).astype(np.uint8)
    out[keep[components]] = 2
    return out


def load_volumes(items: Sequence[dict[str, Any]], window: tuple[float, float], stage: str | None = None,
                 early_radius_mm: float = 10.0) -> list[Volume]:
    """Load and window every item (float16 keeps a few hundred phantom cases in memory)."""
    if not items:
        raise SynthesisInputError("no training cases: the item list is empty")
    volumes = []
    for item in items:
        ct, label, spacing = load_item(item)
        volumes.append(Volume(str(item.get("case_id")), hu_to_unit(ct, window).astype(np.float16),
                              stage_label(label, spacing, stage, early_radius_mm)))
    return volumes


def crop_at(array: np.ndarray, center: Sequence[int], size: Sequence[int], fill: float) -> np.ndarray:
    """``size`` crop of ``array`` centred at ``center`` (voxel), padded with ``fill`` at borders."""
    starts = [int(c) - s // 2 for c, s in zip(center, size)]
    out = np.full(tuple(size), fill, dtype=array.dtype)
    src, dst = [], []
    for start, length, extent in zip(starts, size, array.shape):
        lo, hi = max(start, 0), min(start + length, extent)
        src.append(slice(lo, max(hi, lo)))
        dst.append(slice(lo - start, lo - start + max(hi - lo, 0)))
    out[tuple(dst)] = array[tuple(src)]
    return out


def sample_center(volume: Volume, rng: np.random.Generator, target_prob: float, target: int) -> np.ndarray:
    """A crop centre voxel. W.p. ``target_prob`` a voxel with label >= ``target``; otherwise an organ
    voxel when ``target`` is the tumor (official ratios [0, 1, 1]) or anywhere when it is the organ.
    Falls back to organ voxels, then anywhere, when the wanted label is absent."""
    if rng.random() < target_prob:
        wanted: tuple[int, ...] = (target, 1)
    else:
        wanted = (1,) if target > 1 else ()
    for label_value in wanted:
        coords = np.flatnonzero(volume.label.ravel() >= label_value)
        if coords.size:
            return np.array(np.unravel_index(coords[rng.integers(coords.size)], volume.label.shape))
    return np.array([rng.integers(extent) for extent in volume.label.shape])


def sample_batch(volumes: Sequence[Volume], rng: np.random.Generator, batch_size: int, crop_size: Sequence[int],
                 target_prob: float, target: int = 2, tumor_prob: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(images (B, 1, *crop) float32 in [-1, 1], tumor masks (B, 1, *crop) float32 {0, 1}).

    Each crop is centred on a tumor voxel w.p. ``tumor_prob``, otherwise by ``sample_center``."""
    images, masks = [], []
    for _ in range(batch_size):
        volume = volumes[rng.integers(len(volumes))]
        if tumor_prob and rng.random() < tumor_prob:
            center = sample_center(volume, rng, 1.0, 2)
        else:
            center = sample_center(volume, rng, target_prob, target)
        images.append(crop_at(volume.image, center, crop_size, fill=-1.0).astype(np.float32))
        masks.append((crop_at(volume.label, center, crop_size, fill=0) == 2).astype(np.float32))
    return np.stack(images)[:, None], np.stack(masks)[:, None]


def has_stage_tumors(volumes: Sequence[Volume]) -> bool:
    return any(bool((v.label == 2).any()) for v in volumes)
