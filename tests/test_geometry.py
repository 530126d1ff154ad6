"""Shared tumor geometry: size types, placement rules, elastic shapes, clipping, errors."""
import dataclasses
import json

import numpy as np
import pytest

from benchmark.perf.reference_impls import deform_volume_reference
from synthesis.elastic import deformed_ellipsoid, plane_displacements
from synthesis.errors import SynthesisInputError
from synthesis.geometry import (
    BASE_RADIUS_MM, HU2023_RANGES, SIZE_TYPES, SizeRange, TumorGeometry, prepare_organ, render_tumor_box,
    render_tumor_mask, sample_geometry, sample_size_type,
)

ONE_EACH = {k: dataclasses.replace(v, count=(1, 1)) for k, v in HU2023_RANGES.items()}


def ellipsoid_organ(extent_mm, spacing, semi_axes_mm):
    """Bool ellipsoid organ centred in a box of ``extent_mm``."""
    shape = tuple(int(round(e / s)) for e, s in zip(extent_mm, spacing))
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    dist = sum((((g + 0.5) * s - e / 2) / r) ** 2 for g, s, e, r in zip(grid, spacing, extent_mm, semi_axes_mm))
    return dist <= 1.0


def test_hu_generator_default_is_the_official_hu_mix():
    """SyntheticTumors TumorGenerated: tiny/small/medium/large/mix with 0.2 each (not DiffTumor's
    early 0.8 / medium 0.1 / large 0.1)."""
    from synthesis.hu import HuGenerator

    organ = prepare_organ(ellipsoid_organ((200, 200, 200), (2.0, 2.0, 2.0), (95, 95, 95)))
    generator, rng = HuGenerator("liver"), np.random.default_rng(0)
    draws = [generator.sample(organ, (2.0, 2.0, 2.0), rng).geometry.size_type for _ in range(500)]
    for size_type in ("tiny", "small", "medium", "large", "mix"):
        assert draws.count(size_type) / len(draws) == pytest.approx(0.2, abs=0.05), size_type


def test_size_fallback_only_for_organ_too_small():
    """Only OrganTooSmallError falls back to a smaller size; any other error is raised as is."""
    from synthesis.errors import OrganTooSmallError
    from synthesis.sizes import sample_with_size_fallback

    def draw(size_type, error):
        if size_type == "large":
            raise error
        return size_type

    probs = {"small": 0.0001, "large": 0.9999}
    too_small = OrganTooSmallError("organ mask too small for a 'large' tumor (the empty part does not count)")
    assert sample_with_size_fallback(np.random.default_rng(0), probs, lambda t: draw(t, too_small))[0] == "small"
    with pytest.raises(SynthesisInputError, match="bad spacing"):
        sample_with_size_fallback(np.random.default_rng(0), probs,
                                  lambda t: draw(t, SynthesisInputError("bad spacing")))


def test_default_size_type_frequencies():
    rng = np.random.default_rng(0)
    draws = [sample_size_type(rng) for _ in range(4000)]
    freq = {t: draws.count(t) / len(draws) for t in SIZE_TYPES}
    assert freq["tiny"] == pytest.approx(0.4, abs=0.03) and freq["small"] == pytest.approx(0.4, abs=0.03)
    assert freq["medium"] == pytest.approx(0.1, abs=0.02) and freq["large"] == pytest.approx(0.1, abs=0.02)
    assert {sample_size_type(rng, {"large": 1.0}) for _ in range(20)} == {"large"}
    with pytest.raises(SynthesisInputError, match="unknown size type"):
        sample_size_type(rng, {"huge": 1.0})


@pytest.mark.parametrize("radii,sigma", [((4, 5, 3), (1, 1, 1)), ((10, 8, 12), (3, 3, 3)), ((9, 9, 3.5), (2, 2, 0.8))])
def test_composed_deformation_equals_three_sequential_resamplings(radii, sigma):
    mask, offset = deformed_ellipsoid(radii, sigma, np.random.default_rng(7))
    radii = np.asarray(radii, float)
    canvas = [max(4, int(np.ceil(4 * r))) for r in radii]
    centre = np.asarray([n // 2 for n in canvas])
    fields = plane_displacements(canvas, sigma, np.random.default_rng(7))
    grid = np.ogrid[tuple(slice(0, n) for n in canvas)]
    ellipsoid = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1
    expected = deform_volume_reference(ellipsoid, fields)
    got = np.zeros(canvas, bool)
    lo = centre + offset
    got[tuple(slice(a, a + n) for a, n in zip(lo, mask.shape))] = mask
    assert expected.sum() > 0
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.8, 0.8, 2.5)])
@pytest.mark.parametrize("size_type", SIZE_TYPES)
def test_equivalent_radius_in_range_mm(spacing, size_type):
    organ = ellipsoid_organ((200, 200, 200), spacing, (95, 95, 95))
    prepared = prepare_organ(organ)
    base = BASE_RADIUS_MM[size_type]
    for seed in range(3):
        geo = sample_geometry(prepared, spacing, size_type, "liver", np.random.default_rng(seed), ranges=ONE_EACH)
        assert all(0.75 * base <= r <= 1.25 * base for r in geo.radii_mm[0])
        _, mask = render_tumor_box(organ, spacing, dataclasses.replace(geo, clip_to_organ=False))
        r_eq = (3 * mask.sum() * np.prod(spacing) / (4 * np.pi)) ** (1 / 3)
        # the order-0 elastic deformation changes the volume a little: +-10 %
        assert 0.75 * base * 0.9 <= r_eq <= 1.25 * base * 1.1, (size_type, r_eq)


@pytest.mark.parametrize("organ_name", ["liver", "pancreas", "kidney"])
@pytest.mark.parametrize("spacing", [(1.5, 1.5, 1.5), (0.9, 1.2, 3.0)])
def test_tumor_inside_organ_and_deterministic(organ_name, spacing):
    organ = ellipsoid_organ((120, 100, 90), spacing, (50, 40, 35))
    for seed in range(4):
        geo = sample_geometry(organ, spacing, ("tiny", "small", "medium")[seed % 3], organ_name,
                              np.random.default_rng(seed))
        if not geo.clip_to_organ:
            continue
        mask = render_tumor_mask(organ, spacing, geo)
        assert mask.any() and not (mask & ~organ).any()
        np.testing.assert_array_equal(mask, render_tumor_mask(organ, spacing, geo))
        again = TumorGeometry.from_dict(json.loads(json.dumps(geo.to_dict())))
        assert again == geo


def test_centres_in_central_slab_and_liver_erosion():
    spacing = (1.0, 1.0, 1.0)
    organ = ellipsoid_organ((100, 90, 80), spacing, (45, 40, 35))
    z = np.flatnonzero(organ.any(axis=(0, 1)))
    for seed in range(10):
        geo = sample_geometry(organ, spacing, "tiny", "liver", np.random.default_rng(seed))
        for i, j, k in geo.centres:
            assert 0.3 <= (k - z[0]) / (z[-1] - z[0]) <= 0.7 + 1e-9
            assert organ[i - 2:i + 3, j - 2:j + 3, k].all()  # 5x5 in-plane erosion at 1 mm


def test_pancreas_large_at_bbox_centre_and_kidney_exophytic_rate():
    spacing = (1.0, 1.0, 1.0)
    organ = ellipsoid_organ((130, 110, 100), spacing, (60, 50, 45))
    geo = sample_geometry(organ, spacing, "large", "pancreas", np.random.default_rng(1))
    idx = [np.flatnonzero(organ.any(axis=tuple(a for a in range(3) if a != b))) for b in range(3)]
    assert geo.centres[0] == tuple((ix[0] + ix[-1]) // 2 for ix in idx)
    prepared = prepare_organ(organ)
    clipped = [sample_geometry(prepared, spacing, "medium", "kidney", np.random.default_rng(s)).clip_to_organ
               for s in range(300)]
    assert 0.4 <= np.mean(clipped) <= 0.6
    assert all(sample_geometry(prepared, spacing, "small", "kidney", np.random.default_rng(s)).clip_to_organ
               for s in range(20))


def test_exophytic_kidney_tumor_leaves_the_organ():
    spacing = (1.0, 1.0, 1.0)
    organ = ellipsoid_organ((80, 80, 80), spacing, (30, 14, 30))  # thin organ: a medium tumor sticks out
    for seed in range(40):
        geo = sample_geometry(organ, spacing, "medium", "kidney", np.random.default_rng(seed))
        if not geo.clip_to_organ:
            mask = render_tumor_mask(organ, spacing, geo)
            assert (mask & ~organ).sum() > 0 and (mask & organ).sum() > 0
            return
    pytest.fail("no exophytic kidney draw in 40 seeds")


def _stub_difftumor(organ: str, size_probs):
    """DiffTumorGenerator with stand-in pipelines (the geometry is under test, not the models)."""
    from synthesis.difftumor.generator import DiffTumorGenerator

    def darken(ct_w, organ_w, mask_w, generators, blur_sigmas):
        return ct_w - 80.0 * mask_w

    return DiffTumorGenerator(organ, size_probs=size_probs, pipelines={"early": darken, "nonearly": darken},
                              crop_size=(16, 16, 16))


def test_difftumor_generator_draws_the_official_difftumor_geometry():
    """DiffTumor STEP3: 1-3 tiny/small ellipsoids, one medium/large, large semi-axes 24-64 mm
    (Hu's preset: 3-10 tiny, 2-5 medium, large semi-axes <= 40 mm)."""
    spacing = (2.0, 2.0, 2.0)
    organ = ellipsoid_organ((200, 200, 200), spacing, (95, 95, 95))
    ct = np.where(organ, 100.0, -100.0).astype(np.float32)[None]
    counts, large_axes = {}, []
    for size_type in ("tiny", "medium", "large"):
        generator = _stub_difftumor("liver", {size_type: 1.0})
        for seed in range(12):
            geo = generator(ct, organ[None], spacing, np.random.default_rng(seed)).params[0]["geometry"]
            counts.setdefault(size_type, set()).add(len(geo["centres"]))
            if size_type == "large":
                large_axes += [r for radii in geo["radii_mm"] for r in radii]
    assert counts["tiny"] <= {1, 2, 3} and len(counts["tiny"]) >= 2
    assert counts["medium"] == {1} and counts["large"] == {1}
    assert min(large_axes) >= 24.0 and max(large_axes) > 45.0 and max(large_axes) <= 64.0


def test_hu2023_mix_has_every_size_type_with_its_own_ranges():
    organ = ellipsoid_organ((200, 200, 200), (2.0, 2.0, 2.0), (95, 95, 95))
    geo = sample_geometry(organ, (2.0, 2.0, 2.0), "mix", "liver", np.random.default_rng(4))
    assert geo.size_type == "mix" and 11 <= len(geo.centres) <= 28  # 3-10 + 5-10 + 2-5 + 1-3
    smallest = sorted(max(r) for r in geo.radii_mm)
    assert smallest[0] <= 5.0 and smallest[-1] >= 24.0  # a tiny (3-5 mm) and a large (24-40 mm) one
    with pytest.raises(SynthesisInputError, match="has no mix"):
        sample_geometry(organ, (2.0, 2.0, 2.0), "mix", "liver", np.random.default_rng(4), ranges="difftumor")


def test_errors_empty_and_too_small_organ():
    rng = np.random.default_rng(0)
    with pytest.raises(SynthesisInputError, match="empty"):
        sample_geometry(np.zeros((20, 20, 20), bool), (1, 1, 1), "tiny", "liver", rng)
    small = ellipsoid_organ((40, 40, 40), (1, 1, 1), (8, 8, 8))
    with pytest.raises(SynthesisInputError, match="too small for a 'large'"):
        sample_geometry(small, (1, 1, 1), "large", "liver", rng)
    with pytest.raises(SynthesisInputError, match="size type"):
        sample_geometry(small, (1, 1, 1), "huge", "liver", rng)
    custom = {"tiny": SizeRange((1.0, 1.0), (1, 1), (0.5, 0.5), False)}
    geo = sample_geometry(small, (1, 1, 1), "tiny", "pancreas", rng, ranges=custom)
    assert geo.radii_mm[0] == (4.0, 4.0, 4.0)


def _bspline3(x):
    """Cubic B-spline basis."""
    x = np.abs(x)
    return np.where(x < 1, 2 / 3 - x ** 2 + x ** 3 / 2, np.where(x < 2, (2 - x) ** 3 / 6, 0.0))


def _elasticdeform_displacement(control: np.ndarray, i: int, j: int, shape) -> float:
    """elasticdeform's displacement at voxel (i, j) of a plane from 3x3 control values: B-spline
    coefficients c with control = M c along each axis (M: B-spline samples, mirror boundary
    c[-1] = c[1], c[3] = c[1]), evaluated at cp = 2 * i / (n - 1) with mirrored indices."""
    m = np.array([[4.0, 2.0, 0.0], [1.0, 4.0, 1.0], [0.0, 2.0, 4.0]]) / 6.0
    coeffs = np.linalg.solve(m, np.linalg.solve(m, control).T).T

    def mirror(k):
        return -k if k < 0 else (4 - k if k > 2 else k)

    cps = [2.0 * i / (shape[0] - 1), 2.0 * j / (shape[1] - 1)]
    ks = [range(int(np.floor(cp)) - 1, int(np.floor(cp)) + 3) for cp in cps]
    return float(sum(coeffs[mirror(a), mirror(b)] * _bspline3(cps[0] - a) * _bspline3(cps[1] - b)
                     for a in ks[0] for b in ks[1]))


def test_displacement_fields_follow_elasticdeforms_formula():
    canvas, sigma = (17, 12, 9), np.array([2.0, 3.0, 1.5])
    fields = plane_displacements(canvas, sigma, np.random.default_rng(5))
    controls = np.random.default_rng(5).standard_normal((3, 2, 3, 3))
    for plane, (a, b) in enumerate(((0, 1), (1, 2), (0, 2))):
        for component, axis in enumerate((a, b)):
            for i, j in ((0, 0), (1, 3), (canvas[a] // 2, canvas[b] - 1), (canvas[a] - 2, 1)):
                expected = sigma[axis] * _elasticdeform_displacement(
                    controls[plane, component], i, j, (canvas[a], canvas[b]))
                assert fields[plane][component][i, j] == pytest.approx(expected, abs=1e-5), (plane, i, j)
