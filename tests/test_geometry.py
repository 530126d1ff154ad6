"""Shared tumor geometry: size types, placement rules, elastic shapes, clipping, errors."""
import dataclasses
import json

import numpy as np
import pytest

from benchmark.perf.reference_impls import deform_volume_reference
from synthesis.elastic import deformed_ellipsoid, plane_displacements
from synthesis.errors import SynthesisInputError
from synthesis.geometry import (
    BASE_RADIUS_MM, DIFFTUMOR_RANGES, HU2023_RANGES, SIZE_TYPES, SizeRange, TumorGeometry, prepare_organ,
    render_tumor_box, render_tumor_mask, sample_geometry, sample_size_type,
)

ONE_EACH = {k: dataclasses.replace(v, count=(1, 1)) for k, v in HU2023_RANGES.items()}


def ellipsoid_organ(extent_mm, spacing, semi_axes_mm):
    """Bool ellipsoid organ centred in a box of ``extent_mm``."""
    shape = tuple(int(round(e / s)) for e, s in zip(extent_mm, spacing))
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    dist = sum((((g + 0.5) * s - e / 2) / r) ** 2 for g, s, e, r in zip(grid, spacing, extent_mm, semi_axes_mm))
    return dist <= 1.0


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


def test_difftumor_preset_large_up_to_two():
    assert DIFFTUMOR_RANGES["large"].radius_scale == (0.75, 2.0)
    assert DIFFTUMOR_RANGES["tiny"].count == (1, 3) and HU2023_RANGES["tiny"].count == (3, 10)


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
