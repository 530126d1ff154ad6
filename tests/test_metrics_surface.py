"""NSD parity with DeepMind's surface-distance package on random shapes and spacings."""
import numpy as np
import pytest
from scipy import ndimage

from benchmark.surface import bounding_box, corner_codes, surface_dice, tolerance_offsets
from benchmark.surfel_table import neighbour_code_to_surface_area

sd = pytest.importorskip("surface_distance")


def deepmind_nsd(pred, ref, spacing, tolerance):
    distances = sd.compute_surface_distances(ref, pred, list(spacing))
    return sd.compute_surface_dice_at_tolerance(distances, tolerance)


def random_blob(rng, shape, sigma, threshold):
    return ndimage.gaussian_filter(rng.random(shape), sigma) > threshold


@pytest.mark.parametrize("seed", range(8))
def test_nsd_equals_deepmind_on_random_shapes(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(12, 36, size=3))
    ref = random_blob(rng, shape, 2.0, 0.5)
    if seed % 2:  # a perturbed copy: mostly close surfaces
        pred = np.roll(ndimage.binary_dilation(ref, iterations=int(rng.integers(0, 2))), 1, axis=seed % 3)
    else:  # unrelated shapes: many far surfels
        pred = random_blob(rng, shape, 1.5, 0.52)
    spacing = tuple(float(s) for s in rng.uniform(0.4, 3.0, size=3))
    tolerance = float(rng.choice([0.5, 1.0, 2.0, 3.5]))
    assert ref.any() and pred.any()
    assert surface_dice(pred, ref, spacing, tolerance) == pytest.approx(
        deepmind_nsd(pred, ref, spacing, tolerance), abs=1e-6)


def test_nsd_same_for_fortran_ordered_masks():
    rng = np.random.default_rng(1)  # nibabel hands out Fortran-ordered arrays
    ref, pred = random_blob(rng, (30, 25, 20), 2.0, 0.5), random_blob(rng, (30, 25, 20), 2.0, 0.5)
    spacing = (0.7, 1.1, 2.5)
    expected = deepmind_nsd(pred, ref, spacing, 2.0)
    assert surface_dice(np.asfortranarray(pred), np.asfortranarray(ref), spacing) == pytest.approx(expected, abs=1e-6)
    assert surface_dice(pred[:, ::-1], ref[:, ::-1], spacing) == pytest.approx(expected, abs=1e-6)


def test_nsd_equals_deepmind_with_large_tolerance_edt_fallback():
    rng = np.random.default_rng(42)
    ref = random_blob(rng, (30, 30, 20), 2.0, 0.5)
    pred = random_blob(rng, (30, 30, 20), 2.0, 0.5)
    spacing = (0.5, 0.6, 1.0)
    assert len(tolerance_offsets(spacing, 6.0)) > 600  # exercises the distance-transform path
    assert surface_dice(pred, ref, spacing, 6.0) == pytest.approx(deepmind_nsd(pred, ref, spacing, 6.0), abs=1e-6)


def test_nsd_small_objects_far_apart_in_large_volume():
    ref = np.zeros((60, 50, 40), dtype=bool)
    pred = np.zeros_like(ref)
    ref[5:8, 5:9, 5:7] = True
    pred[50:53, 40:44, 30:33] = True
    pred[6:8, 5:8, 5:7] = True
    spacing = (0.8, 0.8, 2.5)
    assert surface_dice(pred, ref, spacing, 2.0) == pytest.approx(deepmind_nsd(pred, ref, spacing, 2.0), abs=1e-6)


def test_surfel_area_table_equals_deepmind():
    from surface_distance import lookup_tables

    for spacing in [(1.0, 1.0, 1.0), (0.8, 0.8, 1.5), (0.3, 2.5, 1.1)]:
        expected = lookup_tables.create_table_neighbour_code_to_surface_area(spacing)
        np.testing.assert_allclose(neighbour_code_to_surface_area(spacing), expected, rtol=0, atol=1e-12)


def test_corner_codes_equal_deepmind_correlation():
    from surface_distance import lookup_tables

    rng = np.random.default_rng(3)
    mask = rng.random((7, 6, 5)) > 0.5
    padded = np.pad(mask, [(0, 1)] * 3).astype(np.uint8)  # DeepMind's crop: pad 1 at the upper end
    expected = ndimage.correlate(padded, lookup_tables.ENCODE_NEIGHBOURHOOD_3D_KERNEL, mode="constant", cval=0)
    np.testing.assert_array_equal(corner_codes(mask), expected)


def test_bounding_box_of_union():
    a = np.zeros((10, 11, 12), dtype=bool)
    b = np.zeros_like(a)
    a[2, 3, 4] = True
    b[7, 1, 9] = True
    assert bounding_box(a, b) == (slice(2, 8), slice(1, 4), slice(4, 10))
    assert bounding_box(np.zeros_like(a)) is None
