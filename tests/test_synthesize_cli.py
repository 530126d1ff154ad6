"""`tumorbench synthesize`: outputs, dtype/affine round trip, replay, and one clear error per bad input."""
import json

import nibabel as nib
import numpy as np
import pytest

from benchmark.cli import main

SPACING = (1.6, 1.6, 2.5)


def write_case(folder, ct_dtype=np.int16, mask_values=1, affine=None):
    shape = (56, 50, 36)
    grid = np.ogrid[:shape[0], :shape[1], :shape[2]]
    organ = sum(((g - n / 2) * s / r) ** 2 for g, n, s, r in zip(grid, shape, SPACING, (36, 32, 34))) <= 1
    ct = np.where(organ, 105, -40) + np.random.default_rng(0).normal(0, 4, shape)
    # LPS-like orientation (flipped x, y) to exercise the reorientation round trip
    affine = np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0]) if affine is None else affine
    nib.save(nib.Nifti1Image(ct.astype(ct_dtype), affine), folder / "ct.nii.gz")
    nib.save(nib.Nifti1Image((organ * mask_values).astype(np.uint8), affine), folder / "mask.nii.gz")
    return folder / "ct.nii.gz", folder / "mask.nii.gz", organ


def run(*args):
    return main(["synthesize", *map(str, args)])


def test_writes_three_files_and_replays_exactly(tmp_path):
    ct_path, mask_path, organ = write_case(tmp_path)
    out = tmp_path / "out"
    assert run(ct_path, mask_path, "--organ", "liver", "--size", "small", "--count", "2", "--seed", "5",
               "--out", out) == 0
    ct_in, ct_out = nib.load(ct_path), nib.load(out / "ct.nii.gz")
    tumor = np.asarray(nib.load(out / "tumor.nii.gz").dataobj)
    assert ct_out.get_data_dtype() == np.int16 and ct_out.shape == ct_in.shape
    np.testing.assert_allclose(ct_out.affine, ct_in.affine)
    assert tumor.dtype == np.uint8 and tumor.any() and not (tumor.astype(bool) & ~organ).any()
    changed = np.asarray(ct_out.dataobj) != np.asarray(ct_in.dataobj)
    assert changed[tumor.astype(bool)].mean() > 0.5 and not (changed & ~organ).any()
    params = json.loads((out / "params.json").read_text())
    assert params["method"] == "hu" and params["seed"] == 5 and len(params["tumors"]) == 2
    assert params["spacing_ras_mm"] == pytest.approx(SPACING)
    again = tmp_path / "again"
    assert run(ct_path, mask_path, "--replay", out / "params.json", "--out", again) == 0
    np.testing.assert_array_equal(np.asarray(nib.load(again / "ct.nii.gz").dataobj), np.asarray(ct_out.dataobj))
    np.testing.assert_array_equal(np.asarray(nib.load(again / "tumor.nii.gz").dataobj), tumor)


def test_multilabel_mask_with_label_and_float_ct(tmp_path):
    ct_path, mask_path, organ = write_case(tmp_path, ct_dtype=np.float32, mask_values=3)
    out = tmp_path / "out"
    assert run(ct_path, mask_path, "--organ", "kidney", "--label", "3", "--size", "tiny", "--out", out) == 0
    assert nib.load(out / "ct.nii.gz").get_data_dtype() == np.float32


def bad_inputs(tmp_path):
    ct_path, mask_path, organ = write_case(tmp_path)
    img = nib.load(mask_path)
    cases = {}
    (tmp_path / "corrupt.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
    cases["corrupt"] = ((ct_path, tmp_path / "corrupt.nii.gz"), "cannot read organ mask")
    cases["missing"] = ((tmp_path / "nope.nii.gz", mask_path), "CT not found")
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[:-1], img.affine), tmp_path / "short.nii.gz")
    cases["shape"] = ((ct_path, tmp_path / "short.nii.gz"), "does not match the CT shape")
    shifted = img.affine.copy()
    shifted[0, 3] += 7
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), shifted), tmp_path / "shifted.nii.gz")
    cases["affine"] = ((ct_path, tmp_path / "shifted.nii.gz"), "affine differs")
    nib.save(nib.Nifti1Image(np.zeros(img.shape, np.uint8), img.affine), tmp_path / "empty.nii.gz")
    cases["empty"] = ((ct_path, tmp_path / "empty.nii.gz"), "organ mask is empty")
    multi = np.asarray(img.dataobj).astype(np.uint8)
    multi[:5] = 2
    nib.save(nib.Nifti1Image(multi, img.affine), tmp_path / "multi.nii.gz")
    cases["multi"] = ((ct_path, tmp_path / "multi.nii.gz"), "pass --label")
    cases["label"] = ((ct_path, mask_path, "--label", "4"), "organ label 4 is absent")
    tiny = np.zeros(img.shape, np.uint8)
    tiny[20:24, 20:24, 14:17] = 1
    nib.save(nib.Nifti1Image(tiny, img.affine), tmp_path / "tiny.nii.gz")
    cases["too_small"] = ((ct_path, tmp_path / "tiny.nii.gz", "--size", "large"), "too small for a 'large' tumor")
    ct = np.asarray(nib.load(ct_path).dataobj).astype(np.float32)
    ct[3, 3, 3] = np.nan
    nib.save(nib.Nifti1Image(ct, img.affine), tmp_path / "nan.nii.gz")
    cases["nan"] = ((tmp_path / "nan.nii.gz", mask_path), "non-finite HU")
    return cases


def test_each_bad_input_exits_2_with_its_message(tmp_path, capsys):
    for name, (args, message) in bad_inputs(tmp_path).items():
        out = tmp_path / f"out_{name}"
        assert run(*args, "--organ", "liver", "--out", out) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("tumorbench: error:") and message in err, (name, err)
        assert not out.exists(), name  # nothing half-written


def test_replay_file_errors(tmp_path, capsys):
    ct_path, mask_path, _ = write_case(tmp_path)
    (tmp_path / "p.json").write_text("{}")
    assert run(ct_path, mask_path, "--replay", tmp_path / "p.json", "--out", tmp_path / "o") == 2
    assert "not a params.json" in capsys.readouterr().err
    assert run(ct_path, mask_path, "--out", tmp_path / "o") == 2
    assert "--organ is required" in capsys.readouterr().err


def test_replay_checks_the_inputs_content_not_only_the_shape(tmp_path, capsys):
    ct_path, mask_path, _ = write_case(tmp_path)
    assert run(ct_path, mask_path, "--organ", "liver", "--size", "tiny", "--out", tmp_path / "out") == 0
    img = nib.load(ct_path)
    other = np.asarray(img.dataobj).copy()
    other[0, 0, 0] += 1  # same shape and affine, one voxel differs
    nib.save(nib.Nifti1Image(other, img.affine), tmp_path / "other.nii.gz")
    code = run(tmp_path / "other.nii.gz", mask_path, "--replay", tmp_path / "out" / "params.json",
               "--out", tmp_path / "again")
    assert code == 2 and "differ in content" in capsys.readouterr().err
    assert not (tmp_path / "again").exists()


def test_overlapping_tumors_are_not_darkened_twice(tmp_path):
    """The same tumor listed twice (fully overlapping) gives exactly the one-tumor CT."""
    ct_path, mask_path, _ = write_case(tmp_path, ct_dtype=np.float32)
    assert run(ct_path, mask_path, "--organ", "liver", "--size", "small", "--out", tmp_path / "one") == 0
    params = json.loads((tmp_path / "one" / "params.json").read_text())
    params["tumors"], params["count"] = params["tumors"] * 2, 2
    (tmp_path / "twice.json").write_text(json.dumps(params))
    assert run(ct_path, mask_path, "--replay", tmp_path / "twice.json", "--out", tmp_path / "twice") == 0
    one, twice = (np.asarray(nib.load(tmp_path / name / "ct.nii.gz").dataobj) for name in ("one", "twice"))
    assert (one != np.asarray(nib.load(ct_path).dataobj)).any()
    np.testing.assert_array_equal(twice, one)
