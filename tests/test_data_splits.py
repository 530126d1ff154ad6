"""Splits: patient-level, disjoint, complete, stratified, stable, never silently regenerated."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.data import Dataset, make_splits
from benchmark.data.splits import compute_splits, splits_problems
from benchmark.data.writer import write_cases_csv, write_dataset_json
from benchmark.errors import InputError


def _cases(n_labeled=13, n_healthy=9, patients=None):
    rows = [{"case_id": f"L{i:02d}", "age": 50 + i, "sex": "M", "has_tumor": 1, "role": "labeled", "source": "t"}
            for i in range(n_labeled)]
    rows += [{"case_id": f"H{i:02d}", "age": 40 + i, "sex": "F", "has_tumor": 0, "role": "healthy", "source": "t"}
             for i in range(n_healthy)]
    if patients:
        for row in rows:
            row["patient_id"] = patients.get(row["case_id"], row["case_id"])
    return rows


def _dataset(tmp_path, rows):
    root = tmp_path / "ds"
    root.mkdir()
    write_dataset_json(root, name="t", organ="liver", spacing=(2, 2, 2), source_format="phantom", num_cases=len(rows))
    write_cases_csv(root, rows)
    return root


def test_folds_are_disjoint_complete_and_stratified():
    cases = pd.DataFrame(_cases())
    folds = compute_splits(cases, n_folds=5, seed=12345)
    all_ids = set(cases["case_id"])
    vals = [set(f["val"]) for f in folds]
    assert set().union(*vals) == all_ids and sum(len(v) for v in vals) == len(all_ids)
    for fold, val in zip(folds, vals):
        assert set(fold["train"]) == all_ids - val and fold["train"] == sorted(fold["train"])
        labeled = sum(c.startswith("L") for c in val)
        assert labeled in (2, 3) and len(val) - labeled in (1, 2)  # 13 labeled, 9 healthy over 5 folds
    assert sorted(len(v) for v in vals) == [4, 4, 4, 5, 5]
    assert compute_splits(cases, seed=12345) == folds and compute_splits(cases, seed=1) != folds


def test_cases_of_one_patient_share_a_fold():
    patients = {"L00": "P1", "L01": "P1", "H00": "P1", "L02": "P2", "H01": "P2"}
    folds = compute_splits(pd.DataFrame(_cases(patients=patients)), seed=3)
    for group in (("L00", "L01", "H00"), ("L02", "H01")):
        holding = [k for k, f in enumerate(folds) if set(group) & set(f["val"])]
        assert len(holding) == 1 and set(group) <= set(folds[holding[0]]["val"])


def test_make_splits_writes_once_and_force_rewrites(tmp_path):
    root = _dataset(tmp_path, _cases())
    path = make_splits(root)
    first = json.loads(path.read_text())
    assert len(first) == 5 and splits_problems(Dataset.open(root)) == []
    path.write_text(json.dumps(first[::-1]))  # a user-edited / older file must be kept
    make_splits(root, seed=99)
    assert json.loads(path.read_text()) == first[::-1]
    make_splits(root, force=True)
    assert json.loads(path.read_text()) == first
    assert Dataset.open(root).fold(2) == (first[2]["train"], first[2]["val"])


def test_too_few_cases_and_stale_splits(tmp_path):
    with pytest.raises(InputError, match="3 patients, need at least n_folds=5"):
        compute_splits(pd.DataFrame(_cases(2, 1)))
    root = _dataset(tmp_path, _cases(4, 3))
    make_splits(root)
    write_cases_csv(root, _cases(5, 3))  # a case added after the split
    problems = splits_problems(Dataset.open(root))
    assert problems == [f"{root.resolve() / 'splits.json'}: case L04 is in the val set of folds [], expected exactly one"
                        " (run `tumorbench data splits --force` after adding cases)"]


def test_cli_splits(tmp_path, capsys):
    root = _dataset(tmp_path, _cases())
    assert main(["data", "splits", str(root), "--folds", "4"]) == 0
    assert "wrote" in capsys.readouterr().out and len(Dataset.open(root).splits) == 4
    assert main(["data", "splits", str(root)]) == 0
    assert "kept existing" in capsys.readouterr().out and len(Dataset.open(root).splits) == 4
    assert main(["data", "splits", str(root), "--force"]) == 0
    assert len(Dataset.open(root).splits) == 5


def test_inner_val_is_patient_level_seeded_and_inside_train():
    patients = {"L00": "P1", "L01": "P1", "H00": "P1"}
    cases = pd.DataFrame(_cases(patients=patients))
    folds = compute_splits(cases, seed=7)
    for fold in folds:
        inner = set(fold["inner_val"])
        assert inner and inner < set(fold["train"]) and not inner & set(fold["val"])
        assert 0.1 < len(inner) / len(fold["train"]) < 0.35  # about a fifth of the training patients
        assert {"L", "H"} <= {c[0] for c in inner}  # stratified: both roles
        group = {"L00", "L01", "H00"}
        assert not (group & inner) or group <= inner or not group <= set(fold["train"])
    assert compute_splits(cases, seed=7) == folds
    assert [f["inner_val"] for f in compute_splits(cases, seed=8)] != [f["inner_val"] for f in folds]


def test_old_splits_get_inner_val_added_once_keeping_their_folds(tmp_path):
    from benchmark.data.splits import fold_cases

    root = _dataset(tmp_path, _cases())
    old = [{"train": f["train"], "val": f["val"]} for f in compute_splits(pd.DataFrame(_cases()), seed=5)]
    (root / "splits.json").write_text(json.dumps(old))
    with pytest.raises(InputError, match="fold 1 has no inner_val"):
        fold_cases(Dataset.open(root), 1)
    make_splits(root)
    new = json.loads((root / "splits.json").read_text())
    assert [{"train": f["train"], "val": f["val"]} for f in new] == old  # folds kept
    assert splits_problems(Dataset.open(root)) == []
    make_splits(root, seed=99)  # written once: a later call changes nothing
    assert json.loads((root / "splits.json").read_text()) == new
    fit, inner, test = fold_cases(Dataset.open(root), 1)
    assert set(fit) | set(inner) == set(new[1]["train"]) and not set(fit) & set(inner)
    assert test == new[1]["val"] and not (set(fit) | set(inner)) & set(test)
    new[1]["inner_val"].append(new[1]["val"][0])  # a test case smuggled into selection
    (root / "splits.json").write_text(json.dumps(new))
    assert any("inner_val case" in p for p in splits_problems(Dataset.open(root)))
    with pytest.raises(InputError, match="test \\(val\\) cases"):
        fold_cases(Dataset.open(root), 1)


def _official(folder, organ_cases, healthy=("hc_1", "hc_2"), extra_val=("liver_99",)):
    """DiffTumor cross_eval/<organ>_aug_data_fold/ in its format: 'image label' per line."""
    folder.mkdir(parents=True)
    line = lambda c: f"imagesTr/{c}.nii.gz labelsTr/{c}.nii.gz"  # noqa: E731
    vals = [organ_cases[k::5] for k in range(5)]
    vals[0] = vals[0] + list(extra_val)  # listed but not imported here
    for k, val in enumerate(vals):
        train = [c for c in organ_cases if c not in val]
        (folder / f"real_tumor_val_{k}.txt").write_text("\n".join(line(c) for c in val) + "\n")
        (folder / f"real_tumor_train_{k}.txt").write_text(
            "\n".join([line(c) for c in train] + [f"CT/{h}.nii.gz label/liver_label/{h}.nii.gz" for h in healthy]) + "\n")
    return vals


def test_official_folds_are_read_from_the_difftumor_fold_lists(tmp_path, capsys):
    rows = [{"case_id": f"liver_{i}", "age": 50, "sex": "M", "has_tumor": 1, "role": "labeled", "source": "msd"}
            for i in range(12)]
    rows += [{"case_id": f"BDMAP_{i}", "age": 50, "sex": "F", "has_tumor": 0, "role": "healthy", "source": "atlas"}
             for i in range(4)]
    root = _dataset(tmp_path, rows)
    official = tmp_path / "liver_aug_data_fold"
    vals = _official(official, [f"liver_{i}" for i in (3, 7, 0, 11, 5, 2, 9, 1, 10, 4, 8, 6)])
    assert main(["data", "splits", str(root), "--from-official", str(official)]) == 0
    out = capsys.readouterr().out
    assert "12 of 13 listed val cases matched (1 not in this dataset)" in out
    folds = Dataset.open(root).splits
    healthy = {f"BDMAP_{i}" for i in range(4)}
    for fold, val in zip(folds, vals):
        assert fold["val"] == sorted(c for c in val if c != "liver_99")
        assert healthy <= set(fold["train"]) and set(fold["inner_val"]) <= set(fold["train"])
    assert splits_problems(Dataset.open(root)) == []  # healthy CTs in every train, in no val: fine
    assert main(["data", "splits", str(root), "--from-official", str(official)]) == 2  # exists: needs --force
    assert "add --force" in capsys.readouterr().err
    (official / "real_tumor_val_2.txt").write_text("not a nifti line\n")
    assert main(["data", "splits", str(root), "--from-official", str(official), "--force"]) == 2
    assert "real_tumor_val_2.txt: line 1" in capsys.readouterr().err


def _kits_lists(folder, listed, healthy=("kidney_ct/k_001", "kidney_ct/k_002")):
    """The official kidney lists: img/imgNNNN paths, 5 folds over ``listed`` case numbers."""
    folder.mkdir(parents=True)
    line = lambda i: f"img/img{i:04d}.nii.gz label/label{i:04d}.nii.gz"  # noqa: E731
    vals = [listed[k::5] for k in range(5)]
    for k, val in enumerate(vals):
        train = [line(i) for i in listed if i not in val] + [f"{h}.nii.gz kidney_label/{h}.nii.gz" for h in healthy]
        (folder / f"real_tumor_val_{k}.txt").write_text("\n".join(line(i) for i in val) + "\n")
        (folder / f"real_tumor_train_{k}.txt").write_text("\n".join(train) + "\n")
    return vals


def test_official_folds_on_a_full_kits_import_use_the_train_lists_and_leave_out_unlisted_cases(tmp_path, capsys):
    """All 210 labeled KiTS19 cases imported; the official lists name 120 of them (96 train + 24 val)."""
    rows = [{"case_id": f"case_{i:05d}", "age": 50, "sex": "M", "has_tumor": 1, "role": "labeled", "source": "kits"}
            for i in range(210)]
    rows += [{"case_id": f"BDMAP_{i:08d}", "age": 50, "sex": "F", "has_tumor": 0, "role": "healthy",
              "source": "atlas"} for i in range(120)]
    root = _dataset(tmp_path, rows)
    listed = list(range(0, 240, 2))  # case_00000, case_00002, ...: 105 imported, 15 (210+) not in this dataset
    vals = _kits_lists(tmp_path / "kidney_aug_data_fold", listed)
    # fold 0's train list leaves out one case that fold 0 does not test either (the paper did not use it there)
    train0 = tmp_path / "kidney_aug_data_fold" / "real_tumor_train_0.txt"
    train0.write_text(train0.read_text().replace("img/img0002.nii.gz label/label0002.nii.gz\n", ""))
    assert main(["data", "splits", str(root), "--from-official", str(tmp_path / "kidney_aug_data_fold")]) == 0
    assert "105 cases of this dataset in no official list are excluded" in capsys.readouterr().out
    folds = Dataset.open(root).splits
    imported = {f"case_{i:05d}" for i in listed if i < 210}
    healthy = {f"BDMAP_{i:08d}" for i in range(120)}
    for k, (fold, val) in enumerate(zip(folds, vals)):
        assert fold["val"] == sorted(f"case_{i:05d}" for i in val if i < 210)
        want = (imported - set(fold["val"]) - ({"case_00002"} if k == 0 else set())) | healthy
        assert set(fold["train"]) == want
        assert set(fold["excluded"]) == {r["case_id"] for r in rows} - want - set(fold["val"])
    assert "case_00001" in folds[0]["excluded"] and "case_00002" in folds[0]["excluded"]
    assert splits_problems(Dataset.open(root)) == []


def test_official_folds_name_a_case_listed_twice(tmp_path):
    from benchmark.data.official_folds import read_official_folds

    rows = [{"case_id": f"case_{i:05d}", "age": 50, "sex": "M", "has_tumor": 1, "role": "labeled", "source": "kits"}
            for i in range(20)]
    root = _dataset(tmp_path, rows)
    folder = tmp_path / "lists"
    _kits_lists(folder, list(range(20)))
    val1 = folder / "real_tumor_val_1.txt"
    original = val1.read_text()
    val1.write_text(original + "img/img0000.nii.gz label/label0000.nii.gz\n")  # also fold 0's
    with pytest.raises(InputError, match=r"case_00000 listed twice: in real_tumor_val_0.txt and real_tumor_val_1.txt"):
        read_official_folds(Dataset.open(root), folder)
    val1.write_text(original + original.splitlines()[0] + "\n")
    with pytest.raises(InputError, match=r"real_tumor_val_1.txt: case_00001 listed twice"):
        read_official_folds(Dataset.open(root), folder)
    val1.write_text(original)
    train = folder / "real_tumor_train_3.txt"
    train.write_text(train.read_text() + "img/img0003.nii.gz label/label0003.nii.gz\n")  # fold 3 tests it
    with pytest.raises(InputError, match=r"case_00003 listed twice: in real_tumor_train_3.txt and real_tumor_val_3"):
        read_official_folds(Dataset.open(root), folder)
    train.unlink()
    with pytest.raises(InputError, match="real_tumor_train_3.txt: missing"):
        read_official_folds(Dataset.open(root), folder)
    with pytest.raises(InputError, match="expected files real_tumor_val_0.txt"):
        read_official_folds(Dataset.open(root), tmp_path)
