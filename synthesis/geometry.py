"""Shared tumor-mask geometry (Hu et al. 2023 shapes, DiffTumor STEP3 per-organ placement).

A tumor of one size type is 1..n elastically deformed ellipsoids, each centred at a random
organ voxel of an axial slice in the central part of the organ, clipped to the organ.
Everything is in millimetres and converted with the real voxel spacing, so any CT works
(the reference assumed 1 mm isotropic voxels, where its voxel numbers equal millimetres).

Sampling (random) and rendering (deterministic, from the stored seed) are separate, so a
``TumorGeometry`` replays exactly.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any, Mapping, Sequence

import numpy as np

from synthesis import shape_kernels
from synthesis.elastic import deformed_ellipsoid
from synthesis.errors import OrganTooSmallError, SynthesisInputError
from synthesis.sizes import (  # noqa: F401  (re-exported: the geometry API includes the size types)
    BASE_RADIUS_MM, DEFAULT_SIZE_PROBS, DIFFTUMOR_RANGES, GEOMETRY_PRESETS, HU2023_RANGES, HU2023_SIZE_PROBS,
    SIZE_CLASSES, SIZE_TYPES, SizeRange, normalise_size_probs, resolve_mix_counts, resolve_ranges, sample_size_type,
    sample_with_size_fallback,
)

ORGANS = ("liver", "pancreas", "kidney")
#: z windows (fractions of the organ z-extent) tried 10 times each, as DiffTumor widens them.
Z_WINDOWS = ((0.3, 0.7), (0.2, 0.8), (0.1, 0.9), (0.0, 1.0))
TRIES_PER_WINDOW = 10
LIVER_EROSION_HALF_WIDTH_MM = 2.0  # cv2.erode 5x5 at 1 mm


@dataclass(frozen=True)
class TumorGeometry:
    """Everything needed to render one tumor mask (JSON-serialisable via ``to_dict``).

    Attributes:
        size_type: tiny|small|medium|large|mix.
        organ: liver|pancreas|kidney.
        centres: per ellipsoid, (i, j, k) centre voxel index in the organ-mask array.
        radii_mm: per ellipsoid, (3,) semi-axes in mm along the array axes.
        elastic_sigmas_mm: per ellipsoid, elastic displacement std in mm.
        deform_seed: seed of the elastic deformations (rendering is deterministic).
        clip_to_organ: intersect with the organ (False only for exophytic kidney tumors).
    """

    size_type: str
    organ: str
    centres: tuple[tuple[int, int, int], ...]
    radii_mm: tuple[tuple[float, float, float], ...]
    elastic_sigmas_mm: tuple[float, ...]
    deform_seed: int
    clip_to_organ: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TumorGeometry":
        return cls(
            size_type=str(data["size_type"]), organ=str(data["organ"]),
            centres=tuple(tuple(int(v) for v in c) for c in data["centres"]),
            radii_mm=tuple(tuple(float(v) for v in r) for r in data["radii_mm"]),
            elastic_sigmas_mm=tuple(float(s) for s in data["elastic_sigmas_mm"]),
            deform_seed=int(data["deform_seed"]), clip_to_organ=bool(data["clip_to_organ"]),
        )


@dataclass(frozen=True)
class PreparedOrgan:
    """An organ mask with its bounding box computed once (reuse it for many tumors in the
    same CT; on a full 1 mm CT the scan over the mask costs more than a small tumor)."""

    mask: np.ndarray
    lo: np.ndarray | None
    hi: np.ndarray | None

    @cached_property
    def voxels(self) -> int:
        """Number of organ voxels."""
        return self.voxels_up_to(None)

    def voxels_up_to(self, limit: int | None) -> int:
        """Number of organ voxels, counted plane by plane and stopped once it reaches ``limit``
        (a size check needs no more; a liver holds a large tumor's worth in a few planes)."""
        if self.lo is None:
            return 0
        box = self.mask[tuple(slice(int(a), int(b) + 1) for a, b in zip(self.lo, self.hi))]
        count = 0
        for start in range(0, box.shape[0], 8):
            count += int(np.count_nonzero(box[start:start + 8]))
            if limit is not None and count >= limit:
                break
        return count


def prepare_organ(organ_mask: "np.ndarray | PreparedOrgan") -> PreparedOrgan:
    """Wrap a (X, Y, Z) organ mask with its bbox (inclusive lo/hi, None if empty)."""
    if isinstance(organ_mask, PreparedOrgan):
        return organ_mask
    organ_mask = np.asarray(organ_mask)
    if organ_mask.ndim != 3:
        raise SynthesisInputError(f"organ mask: expected a 3D array, got shape {organ_mask.shape}")
    box = organ_bbox(organ_mask)
    return PreparedOrgan(organ_mask, *(box if box is not None else (None, None)))


def organ_bbox(organ_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(lo, hi) inclusive voxel bounds of a 3D mask, or None if empty.

    One pass over the volume: whole planes OR-ed together (faster than reducing the short
    contiguous last axis); a bool/uint8 C-ordered mask also gets its plane flags in that pass.
    """
    if organ_mask.itemsize == 1 and organ_mask.flags.c_contiguous and organ_mask.size:
        # bool/uint8: one compiled pass gives the plane flags and the projection together
        flags, union = shape_kernels.mask_projections(organ_mask.view(np.uint8).reshape(organ_mask.shape[0], -1))
        plane = union.reshape(organ_mask.shape[1:]) != 0
        rows = np.flatnonzero(flags)
    else:
        plane = np.any(organ_mask, axis=0)
        rows = None
    cols, depth = np.flatnonzero(plane.any(axis=1)), np.flatnonzero(plane.any(axis=0))
    if cols.size == 0:
        return None
    if rows is None:
        sub = organ_mask[:, cols[0]:cols[-1] + 1, depth[0]:depth[-1] + 1]
        rows = np.flatnonzero(sub.any(axis=(1, 2)))
    return np.asarray([rows[0], cols[0], depth[0]]), np.asarray([rows[-1], cols[-1], depth[-1]])


def _check_organ(organ: PreparedOrgan, spacing: Sequence[float], size_type: str,
                 ranges: Mapping[str, SizeRange]) -> None:
    if size_type not in SIZE_TYPES:
        raise SynthesisInputError(f"size type {size_type!r}: expected one of {SIZE_CLASSES}")
    if organ.lo is None:
        raise SynthesisInputError("organ mask is empty: no organ voxel to place a tumor in")
    voxel_mm3 = float(np.prod(spacing))
    smallest_mm3 = 4 / 3 * np.pi * (BASE_RADIUS_MM[size_type] * ranges[size_type].radius_scale[0]) ** 3
    if organ.voxels_up_to(int(np.ceil(smallest_mm3 / voxel_mm3))) * voxel_mm3 < smallest_mm3:
        volume_mm3 = organ.voxels * voxel_mm3
        raise OrganTooSmallError(
            f"organ mask too small for a {size_type!r} tumor: organ {volume_mm3:.0f} mm^3, "
            f"the smallest {size_type} tumor is {smallest_mm3:.0f} mm^3")


REJECTION_TRIES = 32  # random probes of a slice before listing all its candidates


def _pick_on_slice(organ_mask, lo, hi, z, spacing, organ, axial_axis, rng) -> tuple[int, int] | None:
    """A uniformly random tumor-centre candidate (row, col) on axial slice z of the organ bbox,
    or None if it has none. Candidates: the in-plane organ, for the liver eroded by a 5x5 mm
    rectangle (cv2.erode with border 1). Random probes first (a probe reads ~25 voxels, while
    listing the candidates reads the whole slice, one cache line per voxel in a z-last CT);
    rejection sampling is exactly uniform, and the full list is the fallback when all miss."""
    index = [slice(lo[a], hi[a] + 1) for a in range(3)]
    index[axial_axis] = z
    plane = organ_mask[tuple(index)]
    half = (0, 0)
    if organ == "liver":
        inplane = [a for a in range(3) if a != axial_axis]
        half = tuple(max(1, int(round(LIVER_EROSION_HALF_WIDTH_MM / spacing[a]))) for a in inplane)
    rows, cols = rng.integers(plane.shape[0], size=REJECTION_TRIES), rng.integers(plane.shape[1], size=REJECTION_TRIES)
    hit = shape_kernels.first_candidate(plane, half[0], half[1], rows, cols)
    if hit >= 0:
        return int(rows[hit]), int(cols[hit])
    candidates = shape_kernels.plane_candidates(plane, *half)
    if not len(candidates):
        return None
    row, col = np.unravel_index(candidates[rng.integers(len(candidates))], plane.shape)
    return int(row), int(col)


def select_centre(organ_mask, lo, hi, spacing, organ, rng, axial_axis=2) -> tuple[int, int, int]:
    """Random organ voxel on a slice of the central organ z-range (window widens on failure),
    uniform over the slice's candidates (see ``_pick_on_slice``)."""
    z_lo, z_hi = int(lo[axial_axis]), int(hi[axial_axis])
    inplane = [a for a in range(3) if a != axial_axis]
    for window in Z_WINDOWS:
        for _ in range(TRIES_PER_WINDOW):
            z = int(round(rng.uniform(*window) * (z_hi - z_lo))) + z_lo
            picked = _pick_on_slice(organ_mask, lo, hi, z, spacing, organ, axial_axis, rng)
            if picked is not None:
                centre = [z, z, z]
                centre[inplane[0]], centre[inplane[1]] = picked[0] + int(lo[inplane[0]]), picked[1] + int(lo[inplane[1]])
                return tuple(centre)
    raise OrganTooSmallError(
        f"organ mask too thin: no {organ} voxel found for a tumor centre after "
        f"{len(Z_WINDOWS) * TRIES_PER_WINDOW} slices")


def _sample_sigma(spec: SizeRange, rng: np.random.Generator) -> float:
    lo, hi = spec.elastic_sigma_mm
    return float(rng.integers(int(lo), int(hi) + 1)) if spec.elastic_integer else float(rng.uniform(lo, hi))


def sample_geometry(organ_mask: "np.ndarray | PreparedOrgan", spacing: Sequence[float], size_type: str, organ: str,
                    rng: np.random.Generator, *, ranges: str | Mapping[str, SizeRange] | None = None,
                    axial_axis: int = 2) -> TumorGeometry:
    """Draw the geometry of one tumor of ``size_type`` in ``organ_mask``.

    Args:
        organ_mask: (X, Y, Z) bool/0-1 organ mask, or ``prepare_organ(mask)`` to reuse its bbox.
        spacing: (3,) voxel size in mm.
        size_type: tiny|small|medium|large, or mix (hu2023: several ellipsoids of every type, each
            with its type's ranges; placed if a tiny one fits, the rest clipped like any tumor).
        organ: liver (eroded slice), pancreas (large: organ bbox centre), kidney (medium/large:
            unclipped with p 0.5).
        rng: randomness.
        ranges: preset name ("hu2023" default, "difftumor") or {size_type: SizeRange}.
        axial_axis: array axis of the patient's superior-inferior direction (2 in RAS).

    Raises:
        SynthesisInputError: empty organ, unknown size type; OrganTooSmallError: organ too
            small/thin for the size type.
    """
    if organ not in ORGANS:
        raise SynthesisInputError(f"organ {organ!r}: expected one of {ORGANS}")
    table = resolve_ranges(ranges)
    prepared = prepare_organ(organ_mask)
    if size_type == "mix":
        counts = resolve_mix_counts(ranges)
        _check_organ(prepared, spacing, "tiny", table)
        plan = [(kind, int(rng.integers(lo, hi + 1))) for kind, (lo, hi) in counts.items()]
    else:
        _check_organ(prepared, spacing, size_type, table)
        spec = table[size_type]
        plan = [(size_type, int(rng.integers(spec.count[0], spec.count[1] + 1)))]
    centres, radii, sigmas = [], [], []
    for kind, count in plan:
        for _ in range(count):
            centre, radius, sigma = _sample_ellipsoid(prepared, spacing, kind, table[kind], organ, rng, axial_axis)
            centres.append(centre)
            radii.append(radius)
            sigmas.append(sigma)
    exophytic = organ == "kidney" and size_type in ("medium", "large") and rng.random() < 0.5
    return TumorGeometry(size_type, organ, tuple(centres), tuple(radii), tuple(sigmas),
                         deform_seed=int(rng.integers(2**31 - 1)), clip_to_organ=not exophytic)


def _sample_ellipsoid(prepared: PreparedOrgan, spacing, size_type: str, spec: SizeRange, organ: str,
                      rng: np.random.Generator, axial_axis: int):
    """(centre voxel, semi-axes mm, elastic sigma mm) of one ellipsoid of ``size_type``."""
    lo, hi = prepared.lo, prepared.hi
    if organ == "pancreas" and size_type == "large":
        centre = tuple(int(v) for v in (lo + hi) // 2)
    else:
        centre = select_centre(prepared.mask, lo, hi, spacing, organ, rng, axial_axis)
    scale = rng.uniform(*spec.radius_scale, size=3)
    return centre, tuple(float(BASE_RADIUS_MM[size_type] * s) for s in scale), _sample_sigma(spec, rng)


def render_tumor_parts(organ_mask: np.ndarray, spacing: Sequence[float], geometry: TumorGeometry
                       ) -> list[tuple[tuple[slice, ...], np.ndarray]]:
    """Render each ellipsoid on its own box (deterministic from ``geometry.deform_seed``).

    Returns:
        One (box, mask) per ellipsoid with at least one voxel in the volume (and in the organ,
        unless ``geometry.clip_to_organ`` is False): the mask's tight bounding box as slices
        into the volume, and the bool mask on it.
    """
    organ_mask = organ_mask.mask if isinstance(organ_mask, PreparedOrgan) else organ_mask
    spacing = np.asarray(spacing, float)
    shape = np.asarray(organ_mask.shape)
    rng = np.random.default_rng(geometry.deform_seed)
    parts = []
    for centre, radii_mm, sigma_mm in zip(geometry.centres, geometry.radii_mm, geometry.elastic_sigmas_mm):
        mask, offset = deformed_ellipsoid(np.asarray(radii_mm) / spacing, sigma_mm / spacing, rng)
        start = np.asarray(centre) + offset
        lo, hi = np.clip(start, 0, shape), np.clip(start + mask.shape, 0, shape)
        if np.any(hi <= lo):
            continue
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        mask = mask[tuple(slice(int(a - s), int(b - s)) for a, b, s in zip(lo, hi, start))]
        # The render box is padded by the largest possible displacement; the shape fills a
        # fraction of it (a large tumor's tight box is ~6x smaller), and every later stage
        # (texture, blur, blend) costs per box voxel: keep the tight box of what is left.
        first, last = shape_kernels.clip_extent(mask, organ_mask[box], geometry.clip_to_organ)
        if np.any(last < first):
            continue
        parts.append((tuple(slice(s.start + int(a), s.start + int(b) + 1) for s, a, b in zip(box, first, last)),
                      mask[tuple(slice(int(a), int(b) + 1) for a, b in zip(first, last))]))
    return parts


def render_tumor_box(organ_mask: np.ndarray, spacing: Sequence[float],
                     geometry: TumorGeometry) -> tuple[tuple[slice, ...], np.ndarray]:
    """Render the tumor (union of its ellipsoids) only on its bounding box.

    Returns:
        (box, mask): slices into the volume and the bool tumor mask on that box.
    """
    parts = render_tumor_parts(organ_mask, spacing, geometry)
    if not parts:
        return (slice(0, 0),) * 3, np.zeros((0, 0, 0), bool)
    lo = np.min([[s.start for s in box] for box, _ in parts], axis=0)
    hi = np.max([[s.stop for s in box] for box, _ in parts], axis=0)
    out = np.zeros(tuple(hi - lo), bool)
    for box, mask in parts:
        out[tuple(slice(s.start - a, s.stop - a) for s, a in zip(box, lo))] |= mask
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi)), out


def render_tumor_mask(organ_mask: np.ndarray, spacing: Sequence[float], geometry: TumorGeometry) -> np.ndarray:
    """Full-size bool tumor mask (same shape as ``organ_mask``); deterministic."""
    organ_mask = organ_mask.mask if isinstance(organ_mask, PreparedOrgan) else organ_mask
    box, mask = render_tumor_box(organ_mask, spacing, geometry)
    out = np.zeros(organ_mask.shape, bool)
    out[box] = mask
    return out
