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
