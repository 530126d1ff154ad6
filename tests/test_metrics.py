"""Metric values against numbers computed by hand on small constructed masks."""
import math

import numpy as np
import pytest

from benchmark.metrics import detect_lesions, dice, equivalent_radius_mm, is_early, size_bin, surface_dice


def box_mask(shape, low, size):
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slice(a, a + n) for a, n in zip(low, size))] = True
    return mask


# --- Dice ------------------------------------------------------------------------------
def test_dice_two_cubes_half_overlap():
    a = box_mask((12, 12, 12), (0, 0, 0), (4, 4, 4))
    b = box_mask((12, 12, 12), (2, 0, 0), (4, 4, 4))  # overlap 2x4x4 = 32 voxels
    assert dice(a, b) == pytest.approx(2 * 32 / (64 + 64))


def test_dice_cube_inside_bigger_box():
    small = box_mask((10, 10, 10), (1, 1, 1), (2, 2, 2))  # 8 voxels, inside
    big = box_mask((10, 10, 10), (0, 0, 0), (4, 4, 4))  # 64 voxels
    assert dice(small, big) == pytest.approx(2 * 8 / 72)
    assert dice(big, small) == dice(small, big)


def test_dice_empty_conventions():
    empty = np.zeros((5, 5, 5), dtype=bool)
    full = box_mask((5, 5, 5), (1, 1, 1), (2, 2, 2))
    assert dice(empty, empty) == 1.0
    assert dice(full, empty) == 0.0
    assert dice(empty, full) == 0.0


# --- NSD -------------------------------------------------------------------------------
def shifted_cube_nsd_by_hand(n, s0, s1, s2):
    """Cube of n^3 voxels vs the same cube shifted one voxel along axis 0, spacing s0 = 3 mm,
    s1, s2 > 2 mm, tolerance 2 mm: every non-zero corner offset is > 2 mm away, so a border
    corner counts only when both surfaces share it. Shared: the rim corners of the lateral
    faces. Not shared (per mask): one whole face perpendicular to the shift (interior, edges,
    vertices) and the interior of the other one. Marching-cubes surfel areas per corner:
    flat face interior s_j s_k; edge along axis k: 1/2 s_k sqrt(s_i^2 + s_j^2); vertex:
    1/8 sqrt((s1 s2)^2 + (s0 s2)^2 + (s0 s1)^2). By symmetry NSD = shared area / total area.
    """
    e0 = 0.5 * s0 * math.hypot(s1, s2)
    e1 = 0.5 * s1 * math.hypot(s0, s2)
    e2 = 0.5 * s2 * math.hypot(s0, s1)
    vertex = 0.125 * math.sqrt((s1 * s2) ** 2 + (s0 * s2) ** 2 + (s0 * s1) ** 2)
    total = 2 * (n - 1) ** 2 * (s1 * s2 + s0 * s2 + s0 * s1) + 4 * (n - 1) * (e0 + e1 + e2) + 8 * vertex
    not_shared = 2 * (n - 1) ** 2 * s1 * s2 + 2 * (n - 1) * (e1 + e2) + 4 * vertex
    return (total - not_shared) / total


@pytest.mark.parametrize("n, s1, s2", [(4, 2.5, 2.5), (6, 2.2, 3.5)])
def test_nsd_cube_shifted_one_voxel_matches_hand_computation(n, s1, s2):
    ref = box_mask((14, 14, 14), (2, 3, 3), (n, n, n))
    pred = box_mask((14, 14, 14), (3, 3, 3), (n, n, n))
    expected = shifted_cube_nsd_by_hand(n, 3.0, s1, s2)
    assert surface_dice(pred, ref, (3.0, s1, s2), tolerance_mm=2.0) == pytest.approx(expected, abs=1e-12)


def test_nsd_shift_within_tolerance_is_perfect():
    ref = box_mask((14, 14, 14), (2, 3, 3), (5, 5, 5))
    pred = box_mask((14, 14, 14), (3, 3, 3), (5, 5, 5))
    # a 1.5 mm shift is within 2 mm: every border corner has a partner at <= 1.5 mm
    assert surface_dice(pred, ref, (1.5, 1.0, 1.0), tolerance_mm=2.0) == 1.0
    assert surface_dice(pred, ref, (1.5, 1.0, 1.0), tolerance_mm=1.4) < 1.0


def test_nsd_identical_and_empty_conventions():
    mask = box_mask((8, 8, 8), (2, 2, 2), (3, 4, 2))
    empty = np.zeros_like(mask)
    assert surface_dice(mask, mask, (0.7, 0.7, 2.5)) == 1.0
    assert surface_dice(empty, empty, (1, 1, 1)) == 1.0
    assert surface_dice(mask, empty, (1, 1, 1)) == 0.0
    assert surface_dice(empty, mask, (1, 1, 1)) == 0.0


def test_nsd_mask_touching_volume_border_counts_outside_as_background():
    ref = box_mask((6, 6, 6), (0, 0, 0), (4, 6, 6))  # touches five faces of the volume
    pred = box_mask((6, 6, 6), (1, 0, 0), (4, 6, 6))
    # same geometry as an interior shifted box (outside = background): compare with padded copy
    padded = surface_dice(np.pad(pred, 3), np.pad(ref, 3), (3.0, 2.5, 2.5))
    assert surface_dice(pred, ref, (3.0, 2.5, 2.5)) == pytest.approx(padded, abs=1e-15)


def test_nsd_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        surface_dice(np.zeros((3, 3, 3)), np.zeros((3, 3, 4)), (1, 1, 1))


# --- lesions ---------------------------------------------------------------------------
def test_radius_and_bins():
    assert equivalent_radius_mm(4 / 3 * math.pi * 1000) == pytest.approx(10.0)
    assert [size_bin(r) for r in (0.0, 4.999, 5.0, 9.99, 10.0, 15.0, 19.9, 20.0, 80.0)] == [
        "0-5", "0-5", "5-10", "5-10", "10-15", "15-20", "15-20", "20+", "20+"]
    assert is_early(10.0) and not is_early(10.0001)


def test_detect_lesions_volumes_bins_detection_and_false_positives():
    shape, spacing = (40, 40, 30), (2.0, 2.0, 2.0)  # 8 mm^3 voxels
    ref = box_mask(shape, (2, 2, 2), (3, 3, 4))  # 36 vox = 288 mm^3, r 4.10 -> 0-5, hit
    ref |= box_mask(shape, (10, 2, 2), (6, 6, 6))  # 216 vox = 1728 mm^3, r 7.44 -> 5-10, missed
    ref |= box_mask(shape, (20, 20, 10), (10, 10, 10))  # 8000 mm^3, r 12.41 -> 10-15, hit
    ref |= box_mask(shape, (2, 30, 2), (2, 2, 1))  # 4 voxels = 32 mm^3 < 64 mm^3: ignored
    pred = box_mask(shape, (3, 3, 3), (1, 1, 3))  # 3 voxels overlapping lesion 1...
    pred |= box_mask(shape, (4, 3, 3), (2, 2, 2))  # ...connected to 8 more -> 11-voxel component
    pred |= box_mask(shape, (25, 25, 15), (10, 10, 10))  # overlaps lesion 3
    pred |= box_mask(shape, (2, 30, 20), (2, 2, 3))  # 12 voxels away from everything: FP
    pred |= box_mask(shape, (35, 2, 2), (1, 1, 2))  # 2-voxel speck (16 mm^3): ignored
    found = detect_lesions(pred, ref, spacing, min_lesion_mm3=64.0)  # 8 voxels of 8 mm^3
    lesions = found["lesions"]
    assert [les["volume_mm3"] for les in lesions] == [288.0, 1728.0, 8000.0]
    for les in lesions:
        assert les["radius_mm"] == pytest.approx((3 * les["volume_mm3"] / (4 * math.pi)) ** (1 / 3))
    assert [les["size_bin"] for les in lesions] == ["0-5", "5-10", "10-15"]
    assert [les["detected"] for les in lesions] == [True, False, True]
    assert lesions[0]["centroid_vox"] == pytest.approx([3.0, 3.0, 3.5])
    assert len(found["false_positives"]) == 1
    fp = found["false_positives"][0]
    assert fp["volume_mm3"] == 96.0 and fp["centroid_vox"] == pytest.approx([2.5, 30.5, 21.0])
    assert found["n_pred_components"] == 3


def test_lesions_use_26_connectivity_and_min_lesion_mm3():
    ref = np.zeros((10, 10, 10), dtype=bool)
    ref[1:3, 1:3, 1:3] = True
    ref[3:5, 3:5, 3:5] = True  # touches the first block only at a corner
    found = detect_lesions(np.zeros_like(ref), ref, (1, 1, 1), min_lesion_mm3=1.0)
    assert len(found["lesions"]) == 1 and found["lesions"][0]["volume_mm3"] == 16.0
    assert not found["lesions"][0]["detected"]
    assert detect_lesions(np.zeros_like(ref), ref, (1, 1, 1), min_lesion_mm3=17.0)["lesions"] == []


def test_tiny_prediction_overlap_does_not_count_as_detection():
    ref = box_mask((10, 10, 10), (2, 2, 2), (3, 3, 3))
    pred = box_mask((10, 10, 10), (3, 3, 3), (1, 1, 1))  # 1 voxel = 1 mm^3, under 8 mm^3
    found = detect_lesions(pred, ref, (1, 1, 1), min_lesion_mm3=8.0)
    assert not found["lesions"][0]["detected"] and found["false_positives"] == []
    assert detect_lesions(pred, ref, (1, 1, 1), min_lesion_mm3=1.0)["lesions"][0]["detected"]
