"""`tumorbench evaluate PRED_DIR REF_DIR --organ ORGAN --out OUT_DIR`: files matched by name, scored on
the reference grid, the cell's output files; grid mismatches, missing and extra files are one clear
error with nothing written, or resampled with --resample (said in the output)."""
import csv
import json

import nibabel as nib
import numpy as np
import pytest

from benchmark.cli import main

SPACING = (3.0, 3.0, 3.0)
SHAPE = (20, 20, 12)


def labels(tumor_low=(6, 6, 4), tumor_size=(3, 3, 3)):
    out = np.zeros(SHAPE, np.uint8)
    out[2:18, 2:18, 1:11] = 1
    out[tuple(slice(a, a + n) for a, n in zip(tumor_low, tumor_size))] = 2
    return out


def save(path, array, spacing=SPACING, origin=(0.0, 0.0, 0.0)):
    path.parent.mkdir(parents=True, exist_ok=True)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = origin
    nib.save(nib.Nifti1Image(array.astype(np.uint8), affine), str(path))


@pytest.fixture()
def folders(tmp_path):
    refs, preds = tmp_path / "refs", tmp_path / "preds"
    save(refs / "a.nii.gz", labels())
    save(preds / "a.nii.gz", labels())                     # exact
    save(refs / "b.nii.gz", labels((10, 10, 5), (4, 4, 4)))
    save(preds / "b.nii.gz", labels((10, 10, 5), (4, 4, 2)))  # half the tumor
    return preds, refs, tmp_path / "out"


def run(*args):
    return main(["evaluate", *map(str, args), "--no-progress"])


def test_scores_on_the_reference_grid_and_writes_the_cell_files(folders, capsys):
    preds, refs, out = folders
    assert run(preds, refs, "--organ", "liver", "--out", out) == 0
    summary = json.loads((out / "summary.json").read_text())
    per_case = {r["case_id"]: r for r in summary["metric_per_case"]}
    assert per_case["a"]["tumor_dsc"] == 1.0 and per_case["b"]["tumor_dsc"] == pytest.approx(2 / 3)
    assert per_case["a"]["spacing"] == list(SPACING) and per_case["a"]["shape"] == list(SHAPE)
    assert per_case["a"]["resampled_from"] is None and summary["scoring"]["resampled_predictions"] == 0
    assert summary["organ"] == "liver" and summary["scoring"]["patient_threshold_mm3"] == 70.0
    rows = list(csv.DictReader((out / "per_case.csv").open()))
    assert [r["case_id"] for r in rows] == ["a", "b"] and rows[1]["n_lesions"] == "1"
    lesions = list(csv.DictReader((out / "per_lesion.csv").open()))
    assert [(r["case_id"], r["volume_mm3"], r["detected"]) for r in lesions] == [
        ("a", "729.0", "True"), ("b", "1728.0", "True")]
    assert "2 cases scored on the reference grids; no prediction resampled" in capsys.readouterr().out


def test_grid_mismatch_is_one_error_naming_the_file_and_both_grids(folders, capsys):
    preds, refs, out = folders
    fine = labels((10, 10, 5), (4, 4, 4))
    fine = np.repeat(np.repeat(np.repeat(fine, 3, 0), 3, 1), 3, 2)  # b's reference drawn at 1 mm
    save(preds / "b.nii.gz", fine, spacing=(1.0, 1.0, 1.0), origin=(-1.0, -1.0, -1.0))
    assert run(preds, refs, "--organ", "liver", "--out", out) == 2
    err = capsys.readouterr().err
    assert "preds/b.nii.gz: prediction grid (shape [60, 60, 36], spacing 1x1x1 mm" in err
    assert "refs/b.nii.gz (shape [20, 20, 12], spacing 3x3x3 mm, origin (0, 0, 0) mm)" in err
    assert "--resample" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()  # nothing half-written

    assert run(preds, refs, "--organ", "liver", "--out", out, "--resample") == 0
    summary = json.loads((out / "summary.json").read_text())
    b = {r["case_id"]: r for r in summary["metric_per_case"]}["b"]
    # 1 mm voxel centres (-0.5 mm offset = edge-aligned) map back to exactly the 3 mm labels
    assert b["resampled_from"] == {"shape": [60, 60, 36], "spacing": [1.0, 1.0, 1.0]} and b["tumor_dsc"] == 1.0
    assert summary["scoring"]["resampled_predictions"] == 1
    assert "1 predictions resampled (nearest) onto them" in capsys.readouterr().out


def test_same_shape_on_a_shifted_grid_is_a_mismatch_too(folders, capsys):
    preds, refs, out = folders
    save(preds / "a.nii.gz", labels(), origin=(3.0, 0.0, 0.0))  # same array, one voxel off in the world
    assert run(preds, refs, "--organ", "liver", "--out", out) == 2
    assert "origin (3, 0, 0) mm" in capsys.readouterr().err and not out.exists()


def test_missing_and_extra_files_are_clear_errors(folders, capsys):
    preds, refs, out = folders
    (preds / "b.nii.gz").unlink()
    assert run(preds, refs, "--organ", "liver", "--out", out) == 2
    err = capsys.readouterr().err
    assert "no prediction for 1 reference file(s)" in err and err.strip().endswith("refs: b.nii.gz")
    save(preds / "b.nii.gz", labels())
    save(preds / "c.nii.gz", labels())
    assert run(preds, refs, "--organ", "liver", "--out", out) == 2
    assert "1 prediction file(s) without a reference" in capsys.readouterr().err and not out.exists()
    (preds / "c.nii.gz").unlink()
    bad = labels()
    bad[0, 0, 0] = 5
    save(preds / "a.nii.gz", bad)
    assert run(preds, refs, "--organ", "liver", "--out", out) == 2
    assert "a.nii.gz: prediction must contain only labels 0/1/2" in capsys.readouterr().err and not out.exists()


def test_help_explains_the_grid_rule_and_the_outputs(capsys):
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("REFERENCE's own grid", "--resample", "per_case.csv", "--patient-threshold-mm3",
                   "README example uses 30", "mm^3"):
        assert phrase in text
