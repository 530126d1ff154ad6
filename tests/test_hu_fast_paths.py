"""The fast paths of the Hu synthesis compute exactly what the straightforward code computes:
compiled rectangle erosion = scipy's binary_erosion, the first-axis bbox scan = argwhere bounds,
column-pruned elastic shapes = three sequential resamplings (also under strong deformation),
banded separable products = dense products."""
import numpy as np
import pytest
from scipy import ndimage

from benchmark.perf.reference_impls import deform_volume_reference
from synthesis.elastic import deformed_ellipsoid, plane_displacements
from synthesis.geometry import _pick_on_slice, organ_bbox
from synthesis.shape_kernels import first_candidate, plane_candidates
from synthesis.banded import gaussian_matrix, lerp_matrix, separable_matmul


def test_plane_candidates_equal_scipy_rectangle_erosion_with_border_one():
    rng = np.random.default_rng(0)
    for trial in range(200):
        plane = rng.random(tuple(rng.integers(1, 40, 2))) < rng.uniform(0.3, 0.99)
        half = (int(rng.integers(0, 5)), int(rng.integers(0, 5))) if trial % 4 else (0, 0)
        expected = plane
        if half != (0, 0):
            footprint = np.ones((2 * half[0] + 1, 2 * half[1] + 1), bool)
            expected = ndimage.binary_erosion(plane, footprint, border_value=1)
        strided = np.zeros(plane.shape + (3,), np.uint8)  # a z-slice view, as the organ mask gives it
        strided[..., 1] = plane
        np.testing.assert_array_equal(plane_candidates(strided[..., 1], *half), np.flatnonzero(expected))


def test_slice_probes_agree_with_candidate_list_and_picks_are_uniform():
    rng = np.random.default_rng(3)
    for _ in range(100):
        plane = (rng.random(tuple(rng.integers(2, 30, 2))) < rng.uniform(0.2, 0.95)).astype(np.uint8)
        half = (int(rng.integers(0, 3)), int(rng.integers(0, 3)))
        rows, cols = rng.integers(plane.shape[0], size=20), rng.integers(plane.shape[1], size=20)
        listed = set(plane_candidates(plane, *half).tolist())
        hits = [t for t in range(20) if rows[t] * plane.shape[1] + cols[t] in listed]
        assert first_candidate(plane, *half, rows, cols) == (hits[0] if hits else -1)
    organ = np.zeros((12, 9, 5), bool)
    organ[2:9, 1:8, :] = True
    organ[2:5, 1:4, :] = False  # a notch: the 5x5 erosion (border 1) removes it and its rim
    lo, hi = np.array([2, 1, 0]), np.array([8, 7, 4])
    expected = np.zeros(organ.shape[:2], bool)
    expected[2:9, 1:8].flat[plane_candidates(organ[2:9, 1:8, 2], 2, 2)] = True
    assert 0 < expected.sum() < 49 - 9
    counts = np.zeros(organ.shape[:2], int)
    for _ in range(100 * expected.sum()):
        row, col = _pick_on_slice(organ, lo, hi, 2, (1.0, 1.0, 1.0), "liver", 2, rng)
        counts[row + lo[0], col + lo[1]] += 1
    assert not counts[~expected].any()
    assert counts[expected].min() > 60 and counts[expected].max() < 140  # 100 each, binomial sd ~10
    empty = np.zeros_like(organ)
    assert _pick_on_slice(empty, lo, hi, 2, (1.0, 1.0, 1.0), "pancreas", 2, rng) is None


def test_organ_bbox_equals_argwhere_bounds():
    rng = np.random.default_rng(1)
    for trial in range(200):
        mask = rng.random(tuple(rng.integers(1, 16, 3))) < rng.uniform(0.0, 0.05)
        mask = mask.astype(np.uint8) if trial % 2 else mask
        points = np.argwhere(mask)
        box = organ_bbox(mask)
        if len(points) == 0:
            assert box is None
        else:
            np.testing.assert_array_equal(box[0], points.min(axis=0))
            np.testing.assert_array_equal(box[1], points.max(axis=0))


@pytest.mark.parametrize("seed", range(12))
def test_pruned_deformation_equals_sequential_resamplings_strong_fields(seed):
    rng = np.random.default_rng(100 + seed)
    radii = rng.uniform(1.0, 7.0, 3)
    sigma = rng.uniform(0.5, 4.0, 3)  # up to about a radius: the column bound must stay conservative
    mask, offset = deformed_ellipsoid(radii, sigma, np.random.default_rng(seed))
    canvas = [max(4, int(np.ceil(4 * r))) for r in radii]
    centre = np.asarray([n // 2 for n in canvas])
    fields = plane_displacements(canvas, sigma, np.random.default_rng(seed))
    grid = np.ogrid[tuple(slice(0, n) for n in canvas)]
    expected = deform_volume_reference(sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1, fields)
    got = np.zeros(canvas, bool)
    got[tuple(slice(a, a + n) for a, n in zip(centre + offset, mask.shape))] = mask
    np.testing.assert_array_equal(got, expected)


def test_banded_separable_products_equal_dense_products():
    rng = np.random.default_rng(2)
    n = 67
    field = rng.random((n, n - 5, n + 2)).astype(np.float32)
    left = np.minimum((np.arange(n) * 0.45).astype(np.intp), field.shape[1] - 2)
    matrices = [gaussian_matrix(n, 1.7), lerp_matrix(left, rng.random(n).astype(np.float32), field.shape[1]),
                gaussian_matrix(n + 2, 3.2)[:, :]]
    dense = np.einsum("ai,ijk->ajk", matrices[0], field, optimize=True)
    dense = np.einsum("bj,ajk->abk", matrices[1], dense, optimize=True)
    dense = np.einsum("ck,abk->abc", matrices[2], dense, optimize=True)
    np.testing.assert_allclose(separable_matmul(field, matrices), dense, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n,p", [(8, 0.15), (27, 0.26), (1, 0.05)])
def test_binomial_inversion_matches_the_binomial_distribution(n, p):
    from scipy import stats

    from synthesis.kernels import binomial_inversion

    rng = np.random.default_rng(n)
    draws = 200_000 + 3  # not a multiple of the kernel's chunk
    counts = np.bincount(binomial_inversion(rng.random(draws, dtype=np.float32), np.full(draws, p, np.float32), n),
                         minlength=n + 1)
    expected = stats.binom.pmf(np.arange(n + 1), n, p) * draws
    big = expected > 50  # each frequency within 5 binomial sd of its expectation
    assert np.all(np.abs(counts[big] - expected[big]) < 5 * np.sqrt(expected[big]) + 1)
    assert counts.sum() == draws


def test_texture_axis_plans_cut_from_the_template_equal_direct_ones():
    from synthesis.texture import _axis_plan, _axis_plan_direct

    fields = ("noise_smooth", "noise_to_salt", "salt_smooth", "salt_to_voxels")
    for sigma_a, sigma_b in [(3.0, 4.0), (15.0, 7.0), (1.2, 1.6), (7.5, 2.8)]:
        for n in (1, 2, 7, 20, 33, 64, 101, 250):
            cut, direct = _axis_plan(n, sigma_a, sigma_b), _axis_plan_direct(n, sigma_a, sigma_b)
            assert (cut.noise_size, cut.factor) == (direct.noise_size, direct.factor)
            for name in fields:
                np.testing.assert_array_equal(getattr(cut, name).dense(), getattr(direct, name).dense(), err_msg=name)
