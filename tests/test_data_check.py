"""Integrity check: a valid phantom passes; every kind of damage gives its own clear message."""
from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

from benchmark.cli import main
from benchmark.data import Dataset, check_dataset, ensure_valid, generate_phantom_dataset
from benchmark.errors import InputError


@pytest.fixture(scope="module")
def valid_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("check") / "liver"
    generate_phantom_dataset(root, "liver", 5, seed=1, shape=(56, 48, 36), spacing=(4.0, 4.0, 4.0), progress=False)
    return root


@pytest.fixture()
def dataset(valid_dataset, tmp_path):
    copy = tmp_path / "liver"
    shutil.copytree(valid_dataset, copy)
    ds = Dataset.open(copy)
    return ds, ds.case_ids("labeled")[0], ds.case_ids("healthy")[0]


def _load(path):
    img = nib.load(str(path))
    return np.asanyarray(img.dataobj).copy(), img.affine.copy()


def _save(path, array, affine):
    nib.save(nib.Nifti1Image(array, affine), str(path))


def test_valid_phantom_has_no_problems(valid_dataset):
    assert check_dataset(valid_dataset) == []
    ensure_valid(valid_dataset)  # does not raise


def _missing_labels(ds, sick, healthy):
    ds.labels_path(sick).unlink()


def _shape_mismatch(ds, sick, healthy):
    labels, affine = _load(ds.labels_path(sick))
    _save(ds.labels_path(sick), labels[:-2], affine)


def _affine_mismatch(ds, sick, healthy):
    labels, affine = _load(ds.labels_path(sick))
    affine[0, 3] += 5.0
    _save(ds.labels_path(sick), labels, affine)


def _nan_hu(ds, sick, healthy):
    ct, affine = _load(ds.ct_path(sick))
    ct = ct.astype(np.float32)
    ct[10, 10, 10] = np.nan
    _save(ds.ct_path(sick), ct, affine)


def _label_five(ds, sick, healthy):
    labels, affine = _load(ds.labels_path(sick))
    labels[0, 0, 0] = 5
    _save(ds.labels_path(sick), labels, affine)


def _empty_organ(ds, sick, healthy):
    labels, affine = _load(ds.labels_path(healthy))
    _save(ds.labels_path(healthy), np.zeros_like(labels), affine)


def _tumor_outside(ds, sick, healthy):
    labels, affine = _load(ds.labels_path(sick))
    labels[1:4, 1:4, 1:4] = 2  # a corner of the field of view: air, far from the liver
    _save(ds.labels_path(sick), labels, affine)


def _healthy_with_tumor(ds, sick, healthy):
    labels, affine = _load(ds.labels_path(healthy))
    inside = np.argwhere(labels == 1)[len(np.argwhere(labels == 1)) // 2]
    labels[tuple(inside)] = 2
    _save(ds.labels_path(healthy), labels, affine)


def _truncated_gzip(ds, sick, healthy):
    data = ds.ct_path(sick).read_bytes()
    ds.ct_path(sick).write_bytes(data[: len(data) // 2])


DAMAGE = [
    (_missing_labels, "sick", "labels.nii.gz: labels file (expected uint8 0/1/2 mask) not found"),
    (_shape_mismatch, "sick", "shape (54, 48, 36) differs from the CT shape (56, 48, 36)"),
    (_affine_mismatch, "sick", "affine differs from the CT affine"),
    (_nan_hu, "sick", "ct.nii.gz: 1 non-finite voxel(s)"),
    (_label_five, "sick", "labels.nii.gz: label values [5]"),
    (_empty_organ, "healthy", "no liver voxels (label 1)"),
    (_tumor_outside, "sick", ": 1 of {n_parts} tumor component(s) (label 2) neither inside nor touching the liver"),
    (_healthy_with_tumor, "healthy", "1 tumor voxel(s) but case {case} has role healthy"),
    (_truncated_gzip, "sick", "ct.nii.gz: cannot read CT image"),
]


@pytest.mark.parametrize("damage, which, expected", DAMAGE, ids=[d[0].__name__.strip("_") for d in DAMAGE])
def test_each_damage_is_reported_once_with_its_file(dataset, damage, which, expected):
    ds, sick, healthy = dataset
    case = sick if which == "sick" else healthy
    n_parts = ndi.label(_load(ds.labels_path(sick))[0] == 2)[1] + 1  # original lesions + the added one
    damage(ds, sick, healthy)
    problems = check_dataset(ds.root)
    matching = [p for p in problems if expected.format(case=case, n_parts=n_parts) in p]
    assert len(matching) == 1, problems
    assert str(ds.case_dir(case)) in matching[0] or "cases.csv" in matching[0]
    with pytest.raises(InputError, match="dataset problem"):
        ensure_valid(ds.root)


def test_tumor_count_mismatch_and_unlisted_folder(dataset):
    ds, sick, healthy = dataset
    labels, affine = _load(ds.labels_path(sick))
    labels[labels == 2] = 1
    _save(ds.labels_path(sick), labels, affine)
    shutil.copytree(ds.case_dir(healthy), ds.root / "cases" / "stray_case")
    problems = check_dataset(ds.root)
    assert any(f"case {sick} has has_tumor=1 but" in p for p in problems)
    assert any("stray_case: case folder not listed" in p for p in problems)


def test_cli_check_exit_codes(dataset, capsys):
    ds, sick, healthy = dataset
    assert main(["data", "check", str(ds.root)]) == 0
    assert "OK (5 cases, organ liver)" in capsys.readouterr().out
    _label_five(ds, sick, healthy)
    assert main(["data", "check", str(ds.root)]) == 2
    err = capsys.readouterr().err
    error_lines = [line for line in err.splitlines() if line.startswith("tumorbench: error:")]
    assert len(error_lines) == 1 and "1 dataset problem(s)" in error_lines[0] and "label values [5]" in err
    assert main(["data", "check", str(ds.root / "nope")]) == 2
    assert "dataset folder not found" in capsys.readouterr().err


def test_dataset_json_disagreeing_with_cases_csv(dataset):
    ds, sick, healthy = dataset
    meta = json.loads((ds.root / "dataset.json").read_text())
    meta.update(num_cases=7, labels={"background": 0, "liver": 1, "tumor": 2})
    (ds.root / "dataset.json").write_text(json.dumps(meta))
    problems = check_dataset(ds.root)
    assert any("dataset.json: num_cases is 7 but" in p and "lists 5 cases" in p for p in problems)
    assert any("dataset.json: labels {'background': 0, 'liver': 1" in p for p in problems)
    assert len(problems) == 2


def test_cached_check_runs_once_and_again_after_a_file_changes(dataset, monkeypatch):
    from benchmark.data import check

    ds, sick, _ = dataset
    check.ensure_valid_cached(ds.root)
    assert (ds.root / check.CHECK_STAMP).is_file()
    assert check_dataset(ds.root) == []  # the stamp file is not a dataset problem

    calls = []
    real_check = check.check_dataset
    monkeypatch.setattr(check, "check_dataset", lambda path, progress=False: calls.append(path) or real_check(path))
    check.ensure_valid_cached(ds.root)
    assert calls == []  # unchanged dataset: not read again

    data, affine = _load(ds.labels_path(sick))
    data[data == 1] = 7  # an invalid label value
    _save(ds.labels_path(sick), data, affine)
    with pytest.raises(InputError, match="label"):
        check.ensure_valid_cached(ds.root)
    assert len(calls) == 1
