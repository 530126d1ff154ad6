"""Phantom generator: determinism, anatomy HU ranges, tumor placement and appearance."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
from scipy import ndimage as ndi

from benchmark.data import Dataset
from benchmark.data.phantom import generate_case, generate_phantom_dataset, phantom_grid
from benchmark.errors import InputError

SMALL = dict(shape=(56, 48, 36), spacing=(4.0, 4.0, 4.0))  # same 224x192x144 mm field of view


def _file_digests(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path):
    a = generate_phantom_dataset(tmp_path / "a", "kidney", 5, seed=3, progress=False, **SMALL)[0]
    b = generate_phantom_dataset(tmp_path / "b", "kidney", 5, seed=3, progress=False, workers=2, **SMALL)[0]
    c = generate_phantom_dataset(tmp_path / "c", "kidney", 5, seed=4, progress=False, **SMALL)[0]
    digests_a, digests_b, digests_c = _file_digests(a), _file_digests(b), _file_digests(c)
    assert "cases/kidney_000/ct.nii.gz" in digests_a and "splits.json" in digests_a
    assert digests_a == digests_b
    modes = {p.stat().st_mode & 0o777 for p in a.rglob("*") if p.is_file()}
    assert modes == {0o644 & ~_umask()}  # not the private 0600 of mkstemp
    changed = [k for k in digests_a if k.endswith("ct.nii.gz") and digests_a[k] != digests_c.get(k)]
    assert len(changed) == 5


def test_all_organs_layout_and_roles(tmp_path):
    paths = generate_phantom_dataset(tmp_path / "ph", "all", 5, seed=0, progress=False, **SMALL)
    assert [p.name for p in paths] == ["liver", "pancreas", "kidney"]
    for path in paths:
        ds = Dataset.open(path)
        assert ds.organ == path.name and ds.spacing == (4.0, 4.0, 4.0)
        assert sorted(ds.cases["role"]) == ["healthy", "healthy", "labeled", "labeled", "labeled"]  # 0.6 of 5
        assert (ds.cases["has_tumor"] == (ds.cases["role"] == "labeled").astype(int)).all()
        assert ds.cases["age"].between(20, 90).all() and set(ds.cases["sex"]) <= {"M", "F"}
        assert len(ds.splits) == 5


def test_refuses_non_empty_output_and_bad_arguments(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("user data")
    with pytest.raises(InputError, match="not empty"):
        generate_phantom_dataset(tmp_path / "x", "liver", 5, seed=0, progress=False, **SMALL)
    assert (tmp_path / "x" / "keep.txt").read_text() == "user data"
    with pytest.raises(InputError, match="--cases 3"):
        generate_phantom_dataset(tmp_path / "y", "liver", 3, seed=0, progress=False)
    with pytest.raises(InputError, match="--organ 'lung'"):
        generate_phantom_dataset(tmp_path / "y", "lung", 5, seed=0, progress=False)
    assert not (tmp_path / "y").exists()


@pytest.fixture(scope="module")
def cases():
    """Two tumor cases per organ at the default 2 mm grid (no files)."""
    grid = phantom_grid()
    return {organ: [generate_case(organ, grid, np.random.default_rng([7, i, k]), True) for k in range(2)]
            for i, organ in enumerate(("liver", "pancreas", "kidney"))}


PARENCHYMA_HU = {"liver": (45, 75), "pancreas": (25, 55), "kidney": (90, 170)}
MIN_ORGAN_ML = {"liver": 150, "pancreas": 20, "kidney": 60}


@pytest.mark.parametrize("organ", ["liver", "pancreas", "kidney"])
def test_organ_hu_size_and_tumor_properties(cases, organ):
    for case in cases[organ]:
        ct, labels = case.ct.astype(float), case.labels
        assert case.ct.dtype == np.int16 and labels.dtype == np.uint8
        assert set(np.unique(labels)) == {0, 1, 2}
        organ_mask = labels == 1
        core = ndi.binary_erosion(organ_mask, iterations=2)  # away from partial-volume edges
        lo, hi = PARENCHYMA_HU[organ]
        assert lo <= ct[core].mean() <= hi
        assert (labels > 0).sum() * 8 / 1000 >= MIN_ORGAN_ML[organ]  # 2 mm voxels = 8 mm^3
        components, n = ndi.label(labels == 2)
        touching = set(np.unique(components[ndi.binary_dilation(organ_mask) & (labels == 2)])) - {0}
        assert n >= 1 and touching == set(range(1, n + 1))
        # hypo-attenuating in every organ (kidney: 75-105 HU against a 120-165 HU parenchyma)
        assert ct[labels == 2].mean() < ct[core].mean() - 15


def test_background_anatomy_hu(cases):
    case = cases["liver"][0]
    ct = case.ct.astype(float)
    assert abs(ct[:3, :3, :].mean() + 1000) < 10  # air in the corners
    nx, ny, nz = ct.shape
    # vertebral body: on the midline, ~50 mm posterior of the centre (y = -50 mm)
    spine = ct[nx // 2 - 2: nx // 2 + 2, ny // 2 - 27: ny // 2 - 23, :]
    assert np.percentile(spine, 90) > 300
    body = ct > -500
    fat = (ct > -150) & (ct < -50) & body
    assert fat.sum() > 0.05 * body.sum()  # subcutaneous + intra-abdominal fat present
    noise = ct[:20, :10, :].std()  # air region: scanner noise only
    assert 5 < noise < 20


def test_healthy_case_has_no_tumor_and_same_organ_labels():
    grid = phantom_grid(**SMALL)
    case = generate_case("pancreas", grid, np.random.default_rng(11), with_tumor=False)
    assert case.n_lesions == 0 and not np.any(case.labels == 2) and np.any(case.labels == 1)


def _umask():
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_scanner_noise_falls_with_the_voxel_volume():
    """10-15 HU at the default 2 mm voxel; 1/sqrt(voxel volume) elsewhere (4 mm: 8x the volume)."""
    def air_noise(grid):
        ct = generate_case("liver", grid, np.random.default_rng(5), with_tumor=False).ct.astype(float)
        return ct[: grid.shape[0] // 6, : grid.shape[1] // 10, :].std()  # air: scanner noise only

    default, coarse = air_noise(phantom_grid()), air_noise(phantom_grid(**SMALL))
    assert 10.0 <= default <= 15.0
    assert coarse / default == pytest.approx(np.sqrt(1 / 8), rel=0.1)


def test_kidney_medulla_is_5_to_15_hu_below_the_cortex():
    from benchmark.data.phantom_anatomy import KIDNEY, build_anatomy

    for seed in range(4):
        canvas = build_anatomy(phantom_grid(**SMALL), np.random.default_rng(seed), "F")
        values = np.unique(canvas.hu[canvas.owner == KIDNEY])  # painted flat: medulla and cortex
        assert len(values) == 2 and values[1] == pytest.approx(canvas.parenchyma_hu[KIDNEY])
        assert 5.0 <= values[1] - values[0] <= 15.0


def test_lesions_grow_into_fat_but_never_into_muscle_bone_vessels_or_other_organs():
    from benchmark.data.phantom_anatomy import BOWEL, FAT, KIDNEY, build_anatomy
    from benchmark.data.phantom_tumors import _allowed_region

    canvas = build_anatomy(phantom_grid(**SMALL), np.random.default_rng(2), "M")
    box = canvas.grid.full_box()
    allowed = _allowed_region(canvas, box, KIDNEY, margin_mm=20.0)
    owners = set(np.unique(canvas.owner[allowed]).tolist())
    assert KIDNEY in owners and FAT in owners
    assert owners <= {KIDNEY, FAT, BOWEL}


@pytest.mark.parametrize("spacing, smallest", [(2.0, 3.0), (3.0, 4.5)])
def test_no_lesion_is_thinner_than_the_grid_resolves(spacing, smallest):
    """Radius >= 1.5 voxels: the 2 mm default keeps the tiny class's 3 mm; a 3 mm grid starts at 4.5 mm."""
    from benchmark.data.phantom_anatomy import LIVER, build_anatomy
    from benchmark.data.phantom_tumors import sample_lesions

    grid = phantom_grid(spacing=(spacing,) * 3)
    canvas = build_anatomy(grid, np.random.default_rng(1), "F")
    radii = [lesion.radius_mm for seed in range(40)
             for lesion in sample_lesions(canvas, "liver", LIVER, np.random.default_rng(seed))]
    assert min(radii) >= smallest and min(radii) < smallest + 0.5  # tiny lesions are drawn, at the floor


def test_only_medium_and_large_kidney_lesions_are_exophytic():
    from benchmark.data.phantom_tumors import OUTGROWTH, outgrowth

    assert outgrowth("kidney", 6.0) == 0.15 and outgrowth("kidney", 15.0) == OUTGROWTH["kidney"] == 0.6
    assert outgrowth("pancreas", 6.0) == outgrowth("pancreas", 15.0) == OUTGROWTH["pancreas"]
