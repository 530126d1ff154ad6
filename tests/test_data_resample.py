"""benchmark/data/resample.py against MONAI: ``Spacing(scale_extent=True)`` and ``Orientation("RAS")``."""
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Orientation, Spacing

from benchmark.data.resample import resample_to_spacing, to_ras

TARGET = (1.0, 1.0, 1.0)


def _smooth_volume(shape, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.cumsum(np.cumsum(rng.normal(size=shape), 0), 2).astype(np.float32)


def _monai_spacing(array, affine, mode):
    spacing = Spacing(pixdim=TARGET, mode=mode, padding_mode="border", scale_extent=True)
    out = spacing(MetaTensor(torch.from_numpy(np.asarray(array))[None], affine=torch.from_numpy(affine)))
    return out.numpy()[0], out.affine.numpy()


def _affine(spacing, origin=(-100.0, 20.0, 5.0)):
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = origin
    return affine


@pytest.mark.parametrize(("shape", "spacing"), [((40, 30, 12), (1.4, 1.6, 4.0)), ((40, 25, 12), (0.8, 0.8, 2.0))])
def test_equals_monai_spacing_with_scale_extent_when_the_field_of_view_fits(shape, spacing):
    """Each axis spans a whole number of target voxels (40 x 1.4 = 56 mm ...) and no sample falls
    exactly between two voxels: same grid, same trilinear values (float32 rounding) and the same
    nearest labels."""
    image, affine = _smooth_volume(shape), _affine(spacing)
    ours, ours_affine = resample_to_spacing(image, affine, TARGET, order=1)
    theirs, their_affine = _monai_spacing(image, affine, "bilinear")
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours_affine, their_affine, atol=1e-9)
    assert np.abs(ours - theirs).max() <= 1e-6 * np.abs(ours).max()
    labels = (image > np.median(image)).astype(np.uint8) + (image > np.percentile(image, 90))
    ours_labels, _ = resample_to_spacing(labels, affine, TARGET, order=0)
    their_labels, _ = _monai_spacing(labels.astype(np.float32), affine, "nearest")
    np.testing.assert_array_equal(ours_labels, their_labels)


def test_where_monai_spacing_differs_it_shifts_the_grid_by_half_the_rounding():
    """36 voxels x 1.4 mm = 50.4 mm -> 50 voxels: ours starts at the old outer edge, MONAI
    spreads the 0.4 mm over both ends, 0.5 * (36/50 - 1/1.4) old voxels = 0.004 mm further."""
    affine = _affine((1.4, 1.4, 4.0))
    ours, ours_affine = resample_to_spacing(_smooth_volume((40, 36, 12)), affine, TARGET, order=1)
    _, their_affine = _monai_spacing(_smooth_volume((40, 36, 12)), affine, "bilinear")
    shift = their_affine[:3, 3] - ours_affine[:3, 3]
    np.testing.assert_allclose(shift, [0.0, 1.4 * 0.5 * (36 / 50 - 1 / 1.4), 0.0], atol=1e-9)
    assert ours.shape == (56, 50, 48)


def test_where_monai_spacing_differs_nearest_ties_go_to_either_voxel():
    """0.5 -> 1 mm: every sample lies halfway between two voxels; ours (scipy) always takes the
    upper one, MONAI (torch grid_sample in float32) either, as the rounding of the position falls."""
    labels = np.arange(40, dtype=np.uint8)[:, None, None]
    affine = _affine((0.5, 1.0, 1.0))
    ours, _ = resample_to_spacing(labels, affine, TARGET, order=0)
    theirs, _ = _monai_spacing(labels.astype(np.float32), affine, "nearest")
    np.testing.assert_array_equal(ours[:, 0, 0], np.arange(1, 40, 2))
    lower = theirs[:, 0, 0] == np.arange(0, 40, 2)
    assert lower.any() and (lower | (theirs[:, 0, 0] == ours[:, 0, 0])).all()


@pytest.mark.parametrize("codes", [(-1, -2, 3), (2, -1, 3), (3, 1, -2)])
def test_to_ras_equals_monai_orientation(codes):
    """LPS, permuted and flipped grids (signed axis numbers: which world axis, which direction)."""
    rotation = np.zeros((3, 3))
    for column, code in enumerate(codes):
        rotation[abs(code) - 1, column] = np.sign(code) * (0.8 + 0.3 * column)
    affine = np.eye(4)
    affine[:3, :3], affine[:3, 3] = rotation, (10.0, -20.0, 30.0)
    image = _smooth_volume((9, 7, 5), seed=1)
    ours, ours_affine = to_ras(image, affine)
    theirs = Orientation(axcodes="RAS")(MetaTensor(torch.from_numpy(image)[None], affine=torch.from_numpy(affine)))
    np.testing.assert_array_equal(ours, theirs.numpy()[0])
    np.testing.assert_allclose(ours_affine, theirs.affine.numpy(), atol=1e-12)


def test_perf_resample_reports_equal_ct_values(capsys):
    import argparse

    from benchmark.perf import resample

    parser = argparse.ArgumentParser()
    resample.add_arguments(parser)
    assert resample.run(parser.parse_args(["--shape", "64", "64", "16", "--spacing", "0.75", "0.75", "2.5"])) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "-> 1 mm 48x48x40" in lines[0] and [line.split()[0] for line in lines[2:4]] == ["ours", "MONAI"]
    assert lines[4].startswith("max |CT ours - MONAI| = ") and float(lines[4].split()[6]) < 1e-3  # HU
