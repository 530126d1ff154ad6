"""Cellular-automaton generator (Pixel2Cancer-style): organ constraint, growth with steps, vessel
invasion, the state -> HU mapping, necrosis label, bit-identical replay, and its documented
differences from the released code and from Hu et al."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from synthesis.cellular.generator import CellularGenerator, grow, initial_state, synthesize
from synthesis.cellular.mapping import map_to_hu_
from synthesis.cellular.params import ORGAN_RULES, STEPS_BY_SIZE, CellularParams
from synthesis.sizes import BASE_RADIUS_MM
from synthesis.texture import hu_texture


def params_for(organ, shape, seeds, steps, **overrides) -> CellularParams:
    values = dict(organ=organ, variant="paper", spacing=(1.0, 1.0, 1.0), box_lo=(0, 0, 0), box_hi=tuple(shape),
                  steps=steps, seeds=tuple(seeds), automaton_key=7, necrosis=False, necrosis_seed=1,
                  sigma_a_mm=3.0, sigma_b_mm=4.0, scale=0.2, base=0.05, u0=0.5, texture_seed=1, darken_hu=100.0,
                  necrosis_hu=100.0, fat_fill_factor=1.5)
    return CellularParams(**{**values, **overrides})


def grown(ct, organ, params):
    rules = ORGAN_RULES[params.organ]
    state, density = initial_state(ct, organ, rules)
    for seed in params.seeds:
        state[seed] = 5
    grow(state, density, params, rules)
    return state, density


def ellipsoid_case(shape=(48, 44, 40), spacing=(1.0, 1.0, 1.0), hu=60.0):
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    organ = sum(((g - n / 2) / (0.42 * n)) ** 2 for g, n in zip(grid, shape)) <= 1
    ct = np.where(organ, hu, -60.0) + np.random.default_rng(0).normal(0, 8, shape)
    ct[:, shape[1] // 2, :] = np.where(organ[:, shape[1] // 2, :], 220.0, ct[:, shape[1] // 2, :])  # a vessel
    return ct.astype(np.float32), organ


def tumor_volume(state):
    return int(((state > 0) & (state < 160)).sum() + (state == -1).sum())


@pytest.mark.parametrize("organ,spacing", [("liver", (1.0, 1.0, 1.0)), ("kidney", (1.5, 1.5, 2.5))])
def test_tumors_lie_inside_the_organ_and_ct_changes_only_there(organ, spacing):
    ct, mask = ellipsoid_case(spacing=spacing)
    gen = CellularGenerator(organ, size_probs={"small": 1.0})
    out = gen(np.stack([ct, ct]), np.stack([mask, mask]), spacing, np.random.default_rng(4))
    for ct_out, tumor in zip(out.ct_hu, out.tumor_mask):
        assert tumor.sum() > 20 and not (tumor & ~mask).any()
        assert np.array_equal(ct_out[~mask], ct[~mask])
        assert ct_out[tumor].mean() < ct[tumor].mean() - 10  # hypo-attenuating


def test_outside_the_organ_is_never_labelled_even_when_invaded():
    """Growth may invade boundary voxels (the pressure rule) outside the organ too, as in the
    released code; the label and the HU change stay on organ voxels."""
    shape = (30, 30, 30)
    organ = np.zeros(shape, bool)
    organ[:, :, :15] = True
    ct = np.full(shape, 60.0, np.float32)
    params = params_for("liver", shape, [(15, 15, 13)], steps=40)
    state, _ = grown(ct, organ, params)
    assert ((state[:, :, 15:] >= 0) & (state[:, :, 15:] < 160)).any()  # invaded outside
    ct_out, label = synthesize(ct, organ, params)
    assert label.any() and not label[:, :, 15:].any() and np.array_equal(ct_out[:, :, 15:], ct[:, :, 15:])


def test_growth_follows_the_step_count_and_the_size_calibration():
    shape = (96, 96, 96)
    ct, organ = np.full(shape, 60.0, np.float32), np.ones(shape, bool)
    volumes = [tumor_volume(grown(ct, organ, params_for("liver", shape, [(48, 48, 48)], steps))[0])
               for steps in (10, 20, 40, 80)]
    assert volumes == sorted(volumes) and volumes[-1] > 8 * volumes[1]
    for size_type in ("tiny", "small", "medium"):
        for steps, scale in zip(STEPS_BY_SIZE[size_type], (0.75, 1.25)):
            radius = (3 * tumor_volume(grown(ct, organ, params_for("liver", shape, [(48, 48, 48)], steps))[0])
                      / (4 * np.pi)) ** (1 / 3)
            assert radius == pytest.approx(scale * BASE_RADIUS_MM[size_type], rel=0.12), (size_type, steps)


def test_a_vessel_wall_is_crossed_only_by_pressure_of_full_cells():
    shape = (40, 24, 24)
    ct, organ = np.full(shape, 60.0, np.float32), np.ones(shape, bool)
    ct[20] = 220.0  # a vessel plane across the whole organ: the only way on is through it
    early, _ = grown(ct, organ, params_for("liver", shape, [(16, 12, 12)], steps=8))
    late, _ = grown(ct, organ, params_for("liver", shape, [(16, 12, 12)], steps=50))
    assert tumor_volume(early[21:]) == 0
    assert (late[20] >= 161).any()  # pushed
    invaded = (late[20] >= 0) & (late[20] < 160)
    assert invaded.any() and tumor_volume(late[21:]) > 50
    assert tumor_volume(late[21:]) < tumor_volume(late[:20])  # the wall slowed it down


def test_hu_mapping_follows_the_formula():
    """Kidney (no fat fill, no smoothing): HU x (lower+10)/outrange on vessels with P >= 5,
    x (lower+40)/outrange on level-3 tissue, - T d1 P / 10, + T d2 N."""
    shape = (12, 14, 16)
    rules = ORGAN_RULES["kidney"]
    ct = np.full(shape, 150.0, np.float32)
    ct[:, :, 8:] = 185.0  # level-3 tissue (lower + 40 <= HU < outrange)
    ct[6, 7, 4] = 260.0  # a vessel inside the tumor
    organ = np.ones(shape, bool)
    state, density = initial_state(ct, organ, rules)
    state[3:9, 4:10, 3:12] = 10
    state[5:7, 6:8, 6:9] = -1
    state[6, 7, 4] = rules.outrange  # the vessel stays boundary
    params = params_for("kidney", shape, [(5, 6, 6)], 20, darken_hu=120.0, necrosis_hu=95.0)
    out = ct.copy()
    label = map_to_hu_(out, organ, state, density, params, rules)

    def blur(a):  # [1/4, 1/2, 1/4] on axes 1 and 2, border reflect-101
        for axis in (1, 2):
            p = np.pad(a, [(1, 1) if k == axis else (0, 0) for k in range(3)], mode="reflect")
            a = 0.25 * np.take(p, range(0, a.shape[axis]), axis) + 0.5 * np.take(p, range(1, a.shape[axis] + 1), axis) \
                + 0.25 * np.take(p, range(2, a.shape[axis] + 2), axis)
        return a

    # label (3:9, 4:10, 3:12) -> its 4^3 tiles (0:12, 4:12, 0:12) + 2 voxels, clipped to the array
    box = (slice(0, 12), slice(2, 14), slice(0, 14))
    s = np.where(state >= rules.outrange, 0, state)[box]
    P, N = blur(np.where(s == -1, 10, s).astype(float)), blur((s == -1).astype(float))
    T = hu_texture(P.shape, (1, 1, 1), 3.0, 4.0, 0.2, 0.05, 0.5, np.random.default_rng(1))
    hu = ct[box].astype(float)
    hu[(density[box] >= 200) & (P >= 5)] *= 150 / 200
    hu[(density[box] == 180) & (P > 0)] *= 180 / 200
    expected = ct.astype(float)
    expected[box] = hu - T * 120.0 * P / 10 + T * 95.0 * N
    np.testing.assert_allclose(out, expected, atol=1e-3)
    assert np.array_equal(label, (state != 0) & (state < rules.outrange))


def test_necrotic_cells_are_labelled_tumor():
    """The released code leaves dead (-1) voxels out of the label (0 with float labels); here
    every tumor voxel, viable or necrotic, is labelled."""
    shape = (48, 48, 48)
    ct, organ = np.full(shape, 60.0, np.float32), np.ones(shape, bool)
    params = params_for("liver", shape, [(24, 24, 24)], steps=70, necrosis=True)
    state, _ = grown(ct, organ, params)
    dead = state == -1
    assert 0.1 < dead.sum() / tumor_volume(state) < 0.9
    _, label = synthesize(ct, organ, params)
    assert label[dead].all() and label.sum() == tumor_volume(state)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (1.5, 1.5, 2.5)])
def test_every_tumor_replays_bit_identically(spacing):
    ct, organ = ellipsoid_case(spacing=spacing)
    gen = CellularGenerator("pancreas", size_probs={"medium": 1.0})
    first = gen(ct[None], organ[None], spacing, np.random.default_rng(11))
    again = gen(ct[None], organ[None], spacing, np.random.default_rng(11))
    assert np.array_equal(first.ct_hu, again.ct_hu) and np.array_equal(first.tumor_mask, again.tumor_mask)
    params = json.loads(json.dumps(first.params[0]))
    ct_replay, mask_replay = gen.replay(ct, organ, params)
    assert np.array_equal(ct_replay, first.ct_hu[0]) and np.array_equal(mask_replay, first.tumor_mask[0])
    other = gen.replay(ct, organ, {**params, "automaton_key": params["automaton_key"] + 1})[1]
    assert not np.array_equal(other, mask_replay)  # the key drives the growth


def test_necrosis_replays_bit_identically():
    ct, organ = ellipsoid_case()
    params = params_for("liver", ct.shape, [(24, 30, 20), (30, 12, 20)], steps=60, necrosis=True)
    first = synthesize(ct, organ, params)
    again = CellularGenerator("liver").replay(ct, organ, json.loads(json.dumps(params.to_dict())))
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])


def test_paper_density_gate_slows_growth_in_dense_tissue_the_released_one_does_not():
    """The released kernel casts the gate's probability to int (always open); the paper's gate
    accepts level-3 tissue with probability 0.1 only."""
    shape = (40, 40, 40)
    organ = np.ones(shape, bool)
    sizes = {}
    for variant in ("paper", "released"):
        for hu in (60.0, 150.0):  # liver: level 1 (lower) and level 3 (lower + 40)
            params = params_for("liver", shape, [(20, 20, 20)], 30, variant=variant)
            sizes[variant, hu] = tumor_volume(grown(np.full(shape, hu, np.float32), organ, params)[0])
    assert sizes["paper", 150.0] < 0.5 * sizes["paper", 60.0]
    assert sizes["released", 150.0] == sizes["released", 60.0]


def test_differs_from_hu_pancreatic_fat_is_filled_not_darkened():
    """Hu et al. darken every organ voxel under the tumor; the cellular mapping fills fat inside a
    pancreatic tumor (HU <= 65) first, so it gets brighter (the liver has no fat fill)."""
    shape = (32, 32, 32)
    ct, organ = np.full(shape, 60.0, np.float32), np.ones(shape, bool)
    ct[14:18, 14:18, 14:18] = -90.0  # fat inside the organ
    changes = {}
    for organ_name in ("pancreas", "liver"):
        params = params_for(organ_name, shape, [(16, 16, 12)], steps=30)
        out, label = synthesize(ct, organ, params)
        fat = label & (ct < -50)
        assert fat.sum() > 20
        changes[organ_name] = float((out[fat] - ct[fat]).mean())
    assert changes["pancreas"] > 10 and changes["liver"] < 0


def test_differs_from_hu_tumors_are_often_multifocal():
    """1-9 seeds anywhere in the organ plus satellites: many tumors have several foci."""
    ct, organ = ellipsoid_case(shape=(60, 56, 50))
    gen = CellularGenerator("liver", size_probs={"tiny": 1.0})
    out = gen(np.stack([ct] * 8), np.stack([organ] * 8), (1.0, 1.0, 1.0), np.random.default_rng(2))
    components = [ndimage.label(m)[1] for m in out.tumor_mask]
    seeds = [len(p["seeds"]) for p in out.params]
    assert max(components) >= 3 and min(seeds) >= 1 and max(seeds) > 1


def test_synthesize_cli_method_cellular_on_an_anisotropic_lps_ct(tmp_path):
    import nibabel as nib

    from benchmark.cli import main

    shape, spacing = (44, 40, 24), (1.2, 1.2, 2.5)
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    organ = sum(((g - n / 2) * s / 22.0) ** 2 for g, n, s in zip(grid, shape, spacing)) <= 1
    ct = np.where(organ, 70, -60) + np.random.default_rng(0).normal(0, 5, shape)
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])  # LPS-like: flipped x, y
    nib.save(nib.Nifti1Image(ct.astype(np.int16), affine), tmp_path / "ct.nii.gz")
    nib.save(nib.Nifti1Image(organ.astype(np.uint8), affine), tmp_path / "mask.nii.gz")
    inputs = [str(tmp_path / "ct.nii.gz"), str(tmp_path / "mask.nii.gz")]
    assert main(["synthesize", *inputs, "--organ", "kidney", "--method", "cellular", "--size", "small",
                 "--count", "2", "--seed", "1", "--out", str(tmp_path / "a")]) == 0
    tumor = np.asarray(nib.load(tmp_path / "a" / "tumor.nii.gz").dataobj).astype(bool)
    out = np.asarray(nib.load(tmp_path / "a" / "ct.nii.gz").dataobj)
    assert tumor.sum() > 20 and not (tumor & ~organ).any() and np.array_equal(out[~organ], ct.astype(np.int16)[~organ])
    params = json.loads((tmp_path / "a" / "params.json").read_text())
    assert params["method"] == "cellular" and [t["size_type"] for t in params["tumors"]] == ["small", "small"]
    assert main(["synthesize", *inputs, "--replay", str(tmp_path / "a" / "params.json"),
                 "--out", str(tmp_path / "b")]) == 0
    assert np.array_equal(np.asarray(nib.load(tmp_path / "b" / "ct.nii.gz").dataobj), out)
