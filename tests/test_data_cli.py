"""`tumorbench data phantom|summary` and summarize_dataset numbers on a hand-made dataset."""
from __future__ import annotations

import numpy as np
import pytest

from benchmark.cli import main
from benchmark.data import Dataset, summarize_dataset
from benchmark.data.nifti import save_nifti_reproducible
from benchmark.data.splits import make_splits
from benchmark.data.summary import lesion_radii_mm
from benchmark.data.writer import write_cases_csv, write_dataset_json


def test_phantom_command_prints_summary_and_validates(tmp_path, capsys):
    out = tmp_path / "ph"
    code = main(["data", "phantom", "--out", str(out), "--organ", "pancreas", "--cases", "5", "--seed", "2",
                 "--shape", "56", "48", "36", "--spacing", "4", "4", "4"])
    assert code == 0
    text = capsys.readouterr().out
    assert "pancreas  (source: phantom)" in text and "labeled 3, healthy 2" in text
    assert "56 x 48 x 36" in text and "4 x 4 x 4 mm" in text and "5 folds" in text
    assert main(["data", "check", str(out)]) == 0
    assert main(["data", "phantom", "--out", str(out), "--organ", "liver", "--cases", "5"]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err


def test_help_texts_have_examples(capsys):
    for argv in (["data", "--help"], ["data", "phantom", "--help"], ["data", "import", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "tumorbench data phantom --out" in text and "aggregated_MAJ_seg" in text


def test_lesion_radius_is_equivalent_sphere():
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[2:5, 2:5, 2:5] = 2          # 27 voxels of 8 mm^3 -> r = (3*216/(4*pi))^(1/3) = 3.72 mm
    labels[10:18, 10:18, 10:18] = 2    # 512 voxels -> r = (3*4096/(4*pi))^(1/3) = 9.93 mm
    radii = sorted(lesion_radii_mm(labels, (2.0, 2.0, 2.0)))
    assert radii == pytest.approx([3.7221, 9.9256], abs=1e-3)


def test_summary_counts_on_hand_made_dataset(tmp_path):
    root = tmp_path / "hand"
    root.mkdir()
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    rows = []
    for k in range(5):
        labels = np.zeros((30, 30, 30), np.uint8)
        labels[5:25, 5:25, 5:25] = 1
        if k < 2:
            labels[8:11, 8:11, 8:11] = 2      # r 3.7 mm -> bin 0-5
            labels[12:24, 12:24, 12:24] = 2   # 1728 voxels -> r 14.8 mm -> bin 10-15
        save_nifti_reproducible(root / "cases" / f"c{k}" / "labels.nii.gz", labels, affine)
        rows.append({"case_id": f"c{k}", "age": [50, 60, 70, None, 80][k], "sex": "MFMF"[k] if k < 4 else None,
                     "has_tumor": k < 2, "role": "labeled" if k < 2 else "healthy", "source": "hand"})
    write_cases_csv(root, rows)
    write_dataset_json(root, name="hand", organ="kidney", spacing=(2, 2, 2), source_format="phantom", num_cases=5)
    make_splits(root)
    text = summarize_dataset(root)
    assert "5  labeled 2, healthy 3, with tumor 2" in text
    assert "4 lesions; radius bins (mm) 0-5: 2, 5-10: 0, 10-15: 2, 15-20: 0, 20+: 0" in text
    assert "mean 65.0 +- 11.2, range 50-80, 1 unknown" in text
    assert "M 2, F 2, unknown 1" in text and "median 64 mL" in text  # 8000 voxels * 8 mm^3
    assert Dataset.open(root).items(["c4"])[0] == {
        "case_id": "c4", "image": str(root.resolve() / "cases/c4/ct.nii.gz"),
        "label": str(root.resolve() / "cases/c4/labels.nii.gz"), "healthy": True, "age": 80, "sex": None}
