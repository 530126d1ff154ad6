"""Hu et al. tumor blending on the tumor's blend boxes (``synthesis.hu`` draws the params).

Two entry points share every step: ``apply_tumor_`` writes a tumor into a whole CT in place;
``tumor_on_box`` returns it on the union of its blend boxes only (a float32 copy of that box: the
work and memory follow the tumor, not the CT). Both read the CT of a blend box before writing it
and the boxes never overlap, so both give the same voxels (tests/test_box_local.py).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from synthesis import kernels
from synthesis.banded import gaussian_band
from synthesis.exophytic import exophytic_region, organ_reference_hu
from synthesis.geometry import PreparedOrgan, render_tumor_parts
from synthesis.texture import texture_strip

BLUR_TRUNCATE = 4.0  # scipy's default: the blur is exactly 0 farther than int(4 sigma + 0.5) voxels


def _blend_boxes(parts, margin: np.ndarray, shape: Sequence[int]) -> list[tuple[list[int], list[int], list[int]]]:
    """Group the ellipsoids whose blend boxes (tumor box + blur margin) overlap.

    Returns:
        (lo, hi, part indices) per group; the groups' boxes do not overlap, so each is blended
        on its own (the reference blends the union on the whole organ box: same voxels).
        Plain ints: a tumor has up to ten parts, numpy's per-call cost would dominate.
    """
    margin, shape = [int(m) for m in margin], [int(n) for n in shape]
    groups = [([max(s.start - m, 0) for s, m in zip(box, margin)],
               [min(s.stop + m, n) for s, m, n in zip(box, margin, shape)], [index])
              for index, (box, _) in enumerate(parts)]
    merged = True
    while merged:
        merged = False
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                (lo_a, hi_a, ia), (lo_b, hi_b, ib) = groups[a], groups[b]
                if all(x < y for x, y in zip(lo_a, hi_b)) and all(x < y for x, y in zip(lo_b, hi_a)):
                    groups[a] = ([min(x, y) for x, y in zip(lo_a, lo_b)], [max(x, y) for x, y in zip(hi_a, hi_b)],
                                 ia + ib)
                    del groups[b]
                    merged = True
                    break
            if merged:
                break
    return groups


def _group_tumor(parts, lo, hi) -> tuple[np.ndarray, tuple[slice, ...]]:
    """The union of a group's ellipsoid masks on the group's blend box, and the union's own box
    within it (the parts' boxes are tight, so no scan is needed)."""
    tumor = np.zeros(tuple(int(b - a) for a, b in zip(lo, hi)), bool)
    inner_lo, inner_hi = list(tumor.shape), [0, 0, 0]
    for part_box, mask in parts:
        local = tuple(slice(s.start - int(a), s.stop - int(a)) for s, a in zip(part_box, lo))
        tumor[local] |= mask
        inner_lo = [min(x, s.start) for x, s in zip(inner_lo, local)]
        inner_hi = [max(x, s.stop) for x, s in zip(inner_hi, local)]
    return tumor, tuple(slice(a, b) for a, b in zip(inner_lo, inner_hi))


def _darken_group(ct_box, organ_box, tumor, inner, field, gain, params, sigma_vox, reference_hu) -> None:
    """Darken one blend box of the CT (a view, in place) by texture * blurred mask * difference
    (outside the organ of an exophytic tumor: blend towards tumor tissue, see ``kernels.blend_box``);
    the blur reads the tumor's own box ``inner`` only (the rest is zero)."""
    bands = tuple((b.starts, b.weights, b.widths) for b in
                  (gaussian_band(n, s, BLUR_TRUNCATE) for n, s in zip(tumor.shape, sigma_vox)))
    kernels.blend_box(ct_box, organ_box, tumor, np.asarray([s.start for s in inner]),
                      np.asarray([s.stop for s in inner]), bands, field, np.float32(gain),
                      np.float32(params.difference_hu), not params.geometry.clip_to_organ, np.float32(reference_hu))


def _tumor_groups(organ_mask: np.ndarray, params, shape: Sequence[int]):
    """(sigma_vox, blend boxes, [(group tumor mask, its inner box)]) of one tumor, in the CT's frame."""
    spacing = np.asarray(params.spacing, float)
    parts = render_tumor_parts(organ_mask, spacing, params.geometry)  # every part has a voxel
    sigma_vox = params.edge_sigma_mm / spacing
    # the blur's radius: it is zero beyond, and reflection at a box edge only reads the margin
    margin = (BLUR_TRUNCATE * sigma_vox + 0.5).astype(int)
    groups = _blend_boxes(parts, margin, shape)
    boxes = [tuple(slice(int(a), int(b)) for a, b in zip(lo, hi)) for lo, hi, _ in groups]
    tumors = [_group_tumor([parts[i] for i in members], lo, hi) for lo, hi, members in groups]
    return sigma_vox, boxes, tumors


def _blend_groups(cts, organs, others, params, sigma_vox, tumors, reference) -> None:
    """Darken each group's blend box in place: ``cts`` / ``organs`` / ``others`` hold, per group,
    the CT (written), the organ mask and the other organs (or None) on its box."""
    spacing = np.asarray(params.spacing, float)
    fields, gain = texture_strip([t.shape for t, _ in tumors], spacing, params.sigma_a_mm, params.sigma_b_mm,
                                 params.scale, params.base, params.u0, np.random.default_rng(params.texture_seed))
    exophytic = not params.geometry.clip_to_organ
    for ct_box, region, other, (tumor, inner), field in zip(cts, organs, others, tumors, fields):
        if exophytic:  # read before this box is changed: the tissue the tumor would replace
            region = exophytic_region(ct_box, region, other)
            tumor &= region != 0
        _darken_group(ct_box, region, tumor, inner, field, gain, params, sigma_vox, reference)


def _on_boxes(array, boxes) -> list:
    return [None if array is None else array[box] for box in boxes]


def apply_tumor_(ct_hu: np.ndarray, organ_mask: np.ndarray, params,
                 other_organs: np.ndarray | None = None) -> list[tuple[tuple[slice, ...], np.ndarray]]:
    """Add the tumor to ``ct_hu`` IN PLACE (float array), touching only its blend boxes.

    Each group of overlapping ellipsoids gets its own box (tumor + blur margin) and blur; the
    boxes' textures are parts of one texture strip drawn from ``params.texture_seed``. An
    exophytic tumor's outer part only covers, and its blend only changes, fat and soft tissue
    that is not in ``other_organs`` (``synthesis.exophytic``): never bone, gas or another organ.

    Returns:
        [(box, tumor)]: slices of each blend box and the bool tumor mask on it.
    """
    organ_mask = organ_mask.mask if isinstance(organ_mask, PreparedOrgan) else organ_mask
    sigma_vox, boxes, tumors = _tumor_groups(organ_mask, params, ct_hu.shape)
    if not boxes:
        return []
    reference = organ_reference_hu(ct_hu, organ_mask, boxes) if not params.geometry.clip_to_organ else 0.0
    _blend_groups(_on_boxes(ct_hu, boxes), _on_boxes(organ_mask, boxes), _on_boxes(other_organs, boxes), params,
                  sigma_vox, tumors, reference)
    return [(box, tumor) for box, (tumor, _) in zip(boxes, tumors)]


def tumor_on_box(ct_hu: np.ndarray, organ_mask: np.ndarray, params, other_organs: np.ndarray | None = None
                 ) -> list[tuple[tuple[slice, ...], np.ndarray, np.ndarray]]:
    """The tumor on its blend boxes; ``ct_hu`` is not modified.

    Returns:
        [(box, ct, tumor)] per blend box (they do not overlap): its slices, the float32 CT on it
        with the tumor and the bool tumor mask on it. Outside the boxes the tumor changes nothing.
    """
    organ_mask = organ_mask.mask if isinstance(organ_mask, PreparedOrgan) else organ_mask
    sigma_vox, boxes, tumors = _tumor_groups(organ_mask, params, ct_hu.shape)
    cts = [np.array(ct_hu[box], dtype=np.float32, copy=True) for box in boxes]
    organs = _on_boxes(organ_mask, boxes)
    reference = 0.0
    if boxes and not params.geometry.clip_to_organ:
        # as apply_tumor_ on a float32 copy: the organ's HU in the boxes, else in the whole organ
        values = np.concatenate([c[o != 0] for c, o in zip(cts, organs)])
        reference = (float(np.median(values)) if values.size else
                     organ_reference_hu(np.asarray(ct_hu, np.float32), organ_mask, boxes))
    _blend_groups(cts, organs, _on_boxes(other_organs, boxes), params, sigma_vox, tumors, reference)
    return [(box, ct, tumor) for box, ct, (tumor, _) in zip(boxes, cts, tumors)]
