"""Hu et al. synthesis: intensity model, locality, purity, replay, generator protocol."""
import dataclasses
import json

import numpy as np
import pytest
from scipy import ndimage

from synthesis.errors import SynthesisInputError
from synthesis.banded import gaussian_band
from synthesis.hu import HuGenerator, HuRanges, TumorParams, sample_params, synthesize
from synthesis.kernels import blend_box
from synthesis.protocol import SynthesisOutput, TumorGenerator
from benchmark.perf.reference_impls import reference_texture
from synthesis.texture import hu_texture

ORGAN_HU = 100.0


def ellipsoid_organ(extent_mm, spacing, semi_axes_mm):
    """Bool ellipsoid organ centred in a box of ``extent_mm``."""
    shape = tuple(int(round(e / s)) for e, s in zip(extent_mm, spacing))
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    dist = sum((((g + 0.5) * s - e / 2) / r) ** 2 for g, s, e, r in zip(grid, spacing, extent_mm, semi_axes_mm))
    return dist <= 1.0


def make_case(spacing, extent=(90, 80, 80), semi=(40, 34, 32), seed=0):
    organ = ellipsoid_organ(extent, spacing, semi)
    rng = np.random.default_rng(seed)
    ct = np.where(organ, ORGAN_HU, -50.0) + rng.normal(0, 5, organ.shape)
    return ct.astype(np.float32), organ


@pytest.mark.parametrize("spacing", [(1.5, 1.5, 1.5), (0.9, 1.1, 2.5)])
def test_tumor_in_organ_and_changes_are_local(spacing):
    ct, organ = make_case(spacing)
    ct_before, organ_before = ct.copy(), organ.copy()
    for seed, size in enumerate(("tiny", "small", "medium")):
        params = sample_params(organ, spacing, np.random.default_rng(seed), organ="liver", size_type=size)
        out, tumor = synthesize(ct, organ, params)
        np.testing.assert_array_equal(ct, ct_before)  # inputs untouched
        np.testing.assert_array_equal(organ, organ_before)
        assert tumor.any() and not (tumor & ~organ).any()
        changed = out != ct
        assert not (changed & ~organ).any()  # nothing outside the organ
        # blur support: at most int(4 sigma + 0.5) voxels from the tumor (per axis)
        radius = (4 * params.edge_sigma_mm / np.asarray(spacing) + 0.5).astype(int)
        support = ndimage.maximum_filter(tumor, size=tuple(2 * radius + 1))
        assert not (changed & ~support).any()
        assert (out <= ct + 1e-4).all()  # hypo-attenuating only


def test_mean_drop_is_texture_mean_times_difference():
    spacing = (1.0, 1.0, 1.0)
    organ = ellipsoid_organ((80, 80, 80), spacing, (38, 38, 38))
    ct = np.where(organ, ORGAN_HU, 0.0).astype(np.float32)  # flat organ: the drop is texture*blur*difference
    ratios, u0s = [], []
    for seed in range(4):
        params = sample_params(organ, spacing, np.random.default_rng(seed), organ="liver", size_type="medium",
                               ranges=HuRanges(geometry="difftumor"))
        out, tumor = synthesize(ct, organ, params)
        core = ndimage.distance_transform_edt(tumor) > 3 * params.edge_sigma_mm  # blur > 0.99 there
        assert core.sum() > 100
        drop = float((ct - out)[core].mean())
        assert 65 * 0.35 <= drop <= 145 * 0.75
        # texture is spatially correlated (sigma_b 4-7 mm), so one core's mean wanders around u0
        ratios.append(drop / params.difference_hu)
        u0s.append(params.u0)
        rim_drop = float((ct - out)[tumor & ~core].mean())
        assert 0 < rim_drop < drop  # the blurred edge is darkened less
    assert all(0.35 <= r <= 0.75 for r in ratios)
    assert np.mean(ratios) == pytest.approx(np.mean(u0s), abs=0.06)


def test_replay_from_params_dict_is_identical():
    spacing = (1.2, 1.2, 2.0)
    ct, organ = make_case(spacing)
    params = sample_params(organ, spacing, np.random.default_rng(3), organ="pancreas", size_type="small")
    out1, mask1 = synthesize(ct, organ, params)
    restored = TumorParams.from_dict(json.loads(json.dumps(params.to_dict())))
    assert restored == params
    out2, mask2 = synthesize(ct, organ, restored)
    np.testing.assert_array_equal(out1, out2)
    np.testing.assert_array_equal(mask1, mask2)
    with pytest.raises(SynthesisInputError, match="missing or invalid"):
        TumorParams.from_dict({"geometry": params.geometry.to_dict()})


def test_exophytic_kidney_tumor_is_tumor_tissue_outside_the_organ_never_darker_than_fat():
    """Outside the organ an exophytic tumor (labelled tumor, as DiffTumor) is drawn as tumor tissue
    (organ HU darkened by the texture), blended into the fat: no voxel gets darker than the fat it
    replaces, and the tumor's outer core reaches soft-tissue HU (the old code drove -100 HU fat to
    about -135..-170 HU)."""
    spacing = (1.0, 1.0, 1.0)
    organ = ellipsoid_organ((80, 80, 80), spacing, (30, 14, 30))
    fat = -100.0 + np.random.default_rng(0).normal(0, 5, organ.shape)
    ct = np.where(organ, 150.0, fat).astype(np.float32)
    for seed in range(40):
        params = sample_params(organ, spacing, np.random.default_rng(seed), organ="kidney", size_type="medium")
        if params.geometry.clip_to_organ:
            continue
        out, tumor = synthesize(ct, organ, params)
        outside = tumor & ~organ
        assert outside.sum() > 200
        assert (out[~organ] >= ct[~organ] - 1e-3).all()  # fat only ever brightens towards tumor tissue
        assert (out[~organ] <= 150.0).all()  # and never beyond the organ's HU
        core = outside & (ndimage.distance_transform_edt(tumor) > 3 * params.edge_sigma_mm)
        assert core.any() and out[core].mean() > 150.0 - params.difference_hu - 5
        inside = tumor & organ
        assert (out[inside] <= ct[inside]).all()  # inside the organ: darkened as the reference
        return
    pytest.fail("no exophytic draw")


@pytest.mark.parametrize("at_edge,exophytic", [(False, False), (True, False), (False, True)])
def test_fused_blend_equals_texture_times_scipy_blur(at_edge, exophytic):
    """blend_box (blur from the tumor's own box, run sums on the last axis, darkening plane by
    plane) = ct - clip(texture * gain) * gaussian_filter(mask) * difference on its region."""
    rng = np.random.default_rng(int(at_edge) + 2 * int(exophytic))
    sigma = np.array([1.3, 0.9, 2.0])
    margin = (4 * sigma + 0.5).astype(int)  # the blur radius, as apply_tumor_ uses
    tumor_core = ndimage.binary_dilation(rng.random((9, 7, 8)) > 0.6)
    lo = np.zeros(3, int) if at_edge else margin  # at the volume edge: the box starts at the tumor
    shape = tuple(lo + np.asarray(tumor_core.shape) + margin)
    tumor = np.zeros(shape, bool)
    tumor[tuple(slice(a, a + n) for a, n in zip(lo, tumor_core.shape))] = tumor_core
    organ = rng.random(shape) > 0.3
    ct = rng.normal(100, 10, shape).astype(np.float32)
    texture, gain, difference = rng.random(shape).astype(np.float32), np.float32(1.7), np.float32(90.0)
    bands = tuple((b.starts, b.weights, b.widths) for b in (gaussian_band(n, s) for n, s in zip(shape, sigma)))
    out = ct.copy()
    reference = np.float32(40.0)
    # exophytic: the region of synthesis.exophytic (1 organ, 2 replaceable tissue, 0 bone/gas/other organ)
    replaceable = ~organ & (rng.random(shape) > 0.2) if exophytic else np.zeros(shape, bool)
    region = (organ.astype(np.uint8) + 2 * replaceable.astype(np.uint8)) if exophytic else organ
    blend_box(out, region, tumor, lo, lo + np.asarray(tumor_core.shape), bands, texture, gain, difference, exophytic,
              reference)
    blur = ndimage.gaussian_filter(tumor.astype(np.float64), sigma)  # mode reflect, truncate 4
    value = np.clip(texture * gain, 0, 1)
    expected = np.where(organ, ct - value * blur * difference, ct)
    if exophytic:  # outside the organ: blend towards tumor tissue (reference HU darkened by the texture)
        expected = np.where(replaceable, ct + blur * (reference - value * difference - ct), expected)
    np.testing.assert_allclose(out, expected, atol=2e-4)
    untouched = organ | (replaceable & (blur > 0))
    assert (out[~untouched] == ct[~untouched]).all()
    if exophytic:  # voxels that may not be replaced are not, however close to the tumor
        spared = ~organ & ~replaceable & (blur > 0.5)
        assert spared.any() and (out[spared] == ct[spared]).all()


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.8, 1.2, 2.5)])
def test_box_blending_equals_full_volume_blur_with_unit_texture(monkeypatch, spacing):
    """With the texture forced to 1, the darkening is difference * gaussian_filter(whole tumor
    mask): the blend boxes, their margins and grouping lose nothing (also at the volume edge,
    where scipy reflects as the boxes do)."""
    import synthesis.hu_blend as hu

    def unit_texture(shapes, *args, **kwargs):
        return [np.ones(tuple(shape), np.float32) for shape in shapes], 1.0

    monkeypatch.setattr(hu, "texture_strip", unit_texture)
    ct, organ = make_case(spacing, extent=(60, 50, 50), semi=(40, 34, 32))  # the organ fills the box edges
    for seed, size in enumerate(("tiny", "small", "medium")):
        params = sample_params(organ, spacing, np.random.default_rng(seed), organ="liver", size_type=size)
        out, tumor = synthesize(ct, organ, params)
        blur = ndimage.gaussian_filter(tumor.astype(np.float64), params.edge_sigma_mm / np.asarray(spacing))
        expected = np.where(organ, ct - blur * params.difference_hu, ct)
        np.testing.assert_allclose(out, expected, atol=2e-3)


@pytest.mark.parametrize("sigma_a,sigma_b,spacing", [(3.0, 4.0, (1.0, 1.0, 1.0)), (12.0, 7.0, (1.0, 1.0, 1.0)),
                                                     (6.0, 4.0, (2.0, 2.0, 2.0))])
def test_texture_statistics_match_reference_process(sigma_a, sigma_b, spacing):
    u0 = 0.52
    ours = [hu_texture((64, 64, 64), spacing, sigma_a, sigma_b, 0.2, 0.05, u0, np.random.default_rng(s))
            for s in range(2)]
    voxels = np.asarray(spacing)
    ref = [reference_texture((64, 64, 64), sigma_a / voxels[0], sigma_b / voxels[0], 0.2, 0.05, u0,
                             np.random.default_rng(s), bank_normalised=True) for s in range(2)]
    for tex in ours:
        assert tex.dtype == np.float32 and tex.min() >= 0 and tex.max() <= 1
        assert float(tex.mean()) == pytest.approx(u0, abs=0.03)
    ratio = np.mean([t.std() for t in ours]) / np.mean([t.std() for t in ref])
    assert 0.6 < ratio < 1.4
    lag = max(1, int(sigma_b / voxels[0]))  # correlation at one sigma_b: smooth, not white
    corr = [np.corrcoef(t[:-lag].ravel(), t[lag:].ravel())[0, 1] for t in ours + ref]
    assert min(corr) > 0.4 and abs(np.mean(corr[:2]) - np.mean(corr[2:])) < 0.15


def test_generator_protocol_and_batches():
    spacing = (2.0, 2.0, 2.0)
    organs = np.stack([ellipsoid_organ((96, 96, 96), spacing, (40, 36, 30)),
                       ellipsoid_organ((96, 96, 96), spacing, (30, 40, 38))])
    ct = np.where(organs, ORGAN_HU, -20.0).astype(np.float32)
    gen = HuGenerator("liver", size_probs={"early": 1.0})
    assert isinstance(gen, TumorGenerator) and gen.name == "hu" and gen.organ == "liver"
    out = gen(ct, organs, spacing, np.random.default_rng(0))
    assert isinstance(out, SynthesisOutput)
    assert out.ct_hu.shape == ct.shape and out.ct_hu.dtype == np.float32 and out.tumor_mask.dtype == bool
    assert len(out.params) == 2 and all(p["method"] == "hu" for p in out.params)
    json.dumps(out.params)
    for b in range(2):
        assert out.tumor_mask[b].any() and not (out.tumor_mask[b] & ~organs[b]).any()
        assert out.params[b]["geometry"]["size_type"] in ("tiny", "small")
        replay_ct, replay_mask = gen.replay(ct[b], organs[b], out.params[b])
        np.testing.assert_array_equal(replay_ct, out.ct_hu[b])
        np.testing.assert_array_equal(replay_mask, out.tumor_mask[b])
    again = gen(ct, organs, spacing, np.random.default_rng(0))
    np.testing.assert_array_equal(again.ct_hu, out.ct_hu)
    with pytest.raises(SynthesisInputError, match="B, X, Y, Z"):
        gen(ct[0], organs[0], spacing, np.random.default_rng(0))


def test_synthesize_rejects_shape_mismatch():
    ct, organ = make_case((2.0, 2.0, 2.0))
    params = sample_params(organ, (2.0, 2.0, 2.0), np.random.default_rng(0), size_type="tiny")
    with pytest.raises(SynthesisInputError, match="shape"):
        synthesize(ct[:-1], organ, params)
    assert dataclasses.is_dataclass(params)


def test_generator_falls_back_to_smaller_size_only_when_mixed():
    spacing = (2.0, 2.0, 2.0)
    organ = ellipsoid_organ((60, 60, 60), spacing, (12, 12, 12))[None]  # 7 mL: too small for large (58 mL)
    ct = np.where(organ, ORGAN_HU, 0.0).astype(np.float32)
    mixed = HuGenerator("liver", size_probs={"small": 0.5, "large": 0.5})
    sizes = {mixed(ct, organ, spacing, np.random.default_rng(s)).params[0]["geometry"]["size_type"]
             for s in range(10)}
    assert sizes == {"small"}
    with pytest.raises(SynthesisInputError, match="too small for a 'large'"):
        HuGenerator("liver", size_probs={"large": 1.0})(ct, organ, spacing, np.random.default_rng(0))


def test_generator_warm_up_synthesizes_once():
    generator = HuGenerator("liver")
    calls = []
    original = generator._one
    generator._one = lambda *args: calls.append(1) or original(*args)
    generator.warm_up()
    generator.warm_up()
    assert calls == [1] and generator._warm


def test_generator_reports_cpu_so_the_trainer_synthesizes_in_workers():
    from models.data import _generator_on_cuda

    assert not _generator_on_cuda(HuGenerator("liver", device="cuda"))


def test_tumor_to_tumor_spread_of_mean_texture_matches_the_reference_bank():
    """The reference normalises a whole 420x300x320 bank once and cuts each tumor's block out of
    it, so a block's mean texture wanders with the bank's low frequencies (sd ~0.04 for sigma_a
    12 mm, ~4 HU of darkening); normalising each box separately shrank it ~3x."""
    sigma_a, sigma_b, box = 12.0, 4.0, 20
    rng = np.random.default_rng(0)
    reference = []
    for _ in range(2):
        bank = reference_texture((112, 112, 112), sigma_a, sigma_b, 0.2, 0.05, 0.52, rng, bank_normalised=True)
        for i, j, k in rng.integers(0, 112 - box, (30, 3)):
            reference.append(bank[i:i + box, j:j + box, k:k + box].mean())
    ours = [hu_texture((box,) * 3, (1.0, 1.0, 1.0), sigma_a, sigma_b, 0.2, 0.05, 0.52,
                       np.random.default_rng(seed)).mean() for seed in range(60)]
    assert np.mean(ours) == pytest.approx(np.mean(reference), abs=0.01)
    assert 0.7 <= np.std(ours) / np.std(reference) <= 1.4, (np.std(ours), np.std(reference))
