"""Importers on format-faithful fixtures: real file names and label values, LPS affines,
anisotropic spacing (0.8 x 0.8 x 2.5 mm), KiTS19's permuted axes. Checks label mapping,
RAS orientation (markers keep their world position), spacing, roles and atomic writes."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from benchmark.cli import main
from benchmark.data import Dataset, check_dataset, import_dataset
from benchmark.errors import InputError

SHAPE = (50, 40, 12)
# LPS-stored grid: voxel x runs to the patient's Left and y to Posterior (negative RAS axes)
AFFINE = np.array([[-0.8, 0, 0, 20.0], [0, -0.8, 0, 16.0], [0, 0, 2.5, -15.0], [0, 0, 0, 1]])
TARGET = (1.6, 1.6, 2.5)
MARKER = (slice(5, 9), slice(30, 34), slice(2, 4))   # bright 1000 HU block, away from labels
ORGAN = (slice(10, 40), slice(8, 28), slice(3, 10))
TUMOR = (slice(20, 26), slice(12, 18), slice(5, 8))
CYST = (slice(32, 38), slice(20, 26), slice(4, 7))


def _volumes(label_values=(1, 2)):
    ct = np.full(SHAPE, 40, np.int16)
    ct[:, :3] = -1000
    ct[MARKER] = 1000
    labels = np.zeros(SHAPE, np.uint8)
    labels[ORGAN] = label_values[0]
    ct[ORGAN] = 60
    if len(label_values) > 1:
        labels[TUMOR] = label_values[1]
        ct[TUMOR] = 10
    if len(label_values) > 2:
        labels[CYST] = label_values[2]
    return ct, labels


def _save(path, array, affine=AFFINE):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, affine), str(path))


def _world_centroid(mask, affine):
    return (affine @ np.append(np.argwhere(mask).mean(0), 1.0))[:3]


def _value_at_world(array, affine, world):
    index = np.rint(np.linalg.inv(affine) @ np.append(world, 1.0))[:3].astype(int)
    return array[tuple(index)]


def _assert_geometry(ds, case_id):
    """RAS axes, target spacing, marker and tumor at their source world positions."""
    ct_img, lab_img = nib.load(str(ds.ct_path(case_id))), nib.load(str(ds.labels_path(case_id)))
    ct, labels, affine = np.asanyarray(ct_img.dataobj), np.asanyarray(lab_img.dataobj), ct_img.affine
    assert nib.aff2axcodes(affine) == ("R", "A", "S") and np.allclose(lab_img.affine, affine)
    assert np.allclose(np.sqrt((affine[:3, :3] ** 2).sum(0)), TARGET)
    assert ct.dtype == np.int16 and labels.dtype == np.uint8 and ct.shape == (25, 20, 12)
    source_marker = np.zeros(SHAPE, bool)
    source_marker[MARKER] = True
    # edge-aligned linear resampling keeps the block centre exactly; a half-voxel slip is 0.4 mm
    assert np.linalg.norm(_world_centroid(ct > 500, affine) - _world_centroid(source_marker, AFFINE)) < 0.2
    source_tumor = np.zeros(SHAPE, bool)
    source_tumor[TUMOR] = True
    assert np.linalg.norm(_world_centroid(labels == 2, affine) - _world_centroid(source_tumor, AFFINE)) < 1.0
    return ct, labels, affine


def _msd(root, n=3, bad_label=False):
    src = root / "Task03_Liver"
    training = []
    for i in range(n):
        ct, labels = _volumes()
        if bad_label and i == n - 1:
            labels[0, 0, 0] = 7
        _save(src / "imagesTr" / f"liver_{i}.nii.gz", ct)
        _save(src / "labelsTr" / f"liver_{i}.nii.gz", labels)
        training.append({"image": f"./imagesTr/liver_{i}.nii.gz", "label": f"./labelsTr/liver_{i}.nii.gz"})
    (src / "imagesTr" / "._liver_0.nii.gz").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    meta = {"name": "Liver", "labels": {"0": "background", "1": "liver", "2": "cancer"}, "training": training}
    (src / "dataset.json").write_text(json.dumps(meta))
    return src


def _atlas(root, organ_files, n=3, lesion_case=True, lesion_files=True):
    """AbdomenAtlas layout; ``lesion_files``: every healthy case ships an empty lesion mask."""
    src = root / "AbdomenAtlas"
    lesion_name = "kidney_tumor" if organ_files[0].startswith("kidney") else f"{organ_files[0]}_tumor"
    for i in range(n + int(lesion_case)):
        case = src / f"BDMAP_{i + 1:08d}"
        ct, labels = _volumes((1,))
        _save(case / "ct.nii.gz", ct)
        for k, name in enumerate(organ_files):
            part = np.zeros(SHAPE, np.uint8)
            part[ORGAN[0], ORGAN[1], slice(3 + 3 * k, 6 + 3 * k)] = 1  # left/right pieces split along z
            _save(case / "segmentations" / f"{name}.nii.gz", part)
        _save(case / "segmentations" / "spleen.nii.gz", np.zeros(SHAPE, np.uint8))
        lesion = np.zeros(SHAPE, np.uint8)
        if lesion_case and i == n:
            lesion[TUMOR] = 1
        if lesion_files or (lesion_case and i == n):
            _save(case / "segmentations" / f"{lesion_name}.nii.gz", lesion)
    return src


def test_msd_then_atlas_append_gives_both_roles_and_splits(tmp_path, capsys):
    out = tmp_path / "liver"
    demo = tmp_path / "demo.csv"
    demo.write_text("case_id,age,sex\nliver_0,61,female\nliver_2,70.0,M\n")
    import_dataset("msd", _msd(tmp_path), "liver", out, spacing=TARGET, demographics=demo, progress=False)
    ds = Dataset.open(out)
    assert ds.case_ids() == ["liver_0", "liver_1", "liver_2"] and ds.meta["source_format"] == "msd"
    assert not (out / "splits.json").exists() and "splits.json not written" in capsys.readouterr().err
    assert ds.items(["liver_0"])[0]["age"] == 61 and ds.items(["liver_0"])[0]["sex"] == "F"
    assert ds.items(["liver_1"])[0]["age"] is None
    _, labels, _ = _assert_geometry(ds, "liver_0")
    assert set(np.unique(labels)) == {0, 1, 2}

    import_dataset("atlas", _atlas(tmp_path, ["liver"]), "liver", out, spacing=TARGET, append=True, progress=False)
    assert "skipping" in capsys.readouterr().err  # BDMAP_00000004 has a liver tumor mask
    ds = Dataset.open(out)
    assert ds.meta["source_format"] == "atlas+msd" and ds.meta["num_cases"] == 6
    assert ds.case_ids("healthy") == ["BDMAP_00000001", "BDMAP_00000002", "BDMAP_00000003"]
    assert list(ds.cases.loc[ds.case_ids("healthy"), "has_tumor"]) == [0, 0, 0]
    assert sorted(c for f in ds.splits for c in f["val"]) == sorted(ds.case_ids())
    assert check_dataset(out) == []
    assert not list(out.glob(".import-staging-*"))


def test_kits_layouts_cyst_maps_to_kidney_and_kits19_axes(tmp_path, capsys):
    src = tmp_path / "kits"
    for i in range(5):
        ct, labels = _volumes((1, 2, 3))
        if i == 0:  # KiTS19 stores (z, y, x) with the slice axis first and running inferior
            perm = np.eye(4)[:, [2, 1, 0, 3]]
            ct, labels = ct.transpose(2, 1, 0)[::-1], labels.transpose(2, 1, 0)[::-1]
            affine = AFFINE @ perm
            affine = affine @ np.array([[-1, 0, 0, SHAPE[2] - 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
            labels[labels == 3] = 1  # KiTS19 has no cyst label
            folder, seg = src / "kits19" / "data" / "case_00000", "segmentation.nii.gz"
        else:
            affine = AFFINE
            folder = src / "kits23" / "dataset" / f"case_{300 + i:05d}"
            seg = "aggregated_MAJ_seg.nii.gz" if i == 1 else "segmentation.nii.gz"  # KiTS21 name
        _save(folder / "imaging.nii.gz", ct, affine)
        _save(folder / seg, labels, affine)
    _save(src / "kits19" / "data" / "case_00210" / "imaging.nii.gz", _volumes()[0])  # test case: no labels
    clinical = [{"case_id": "case_00000", "age_at_nephrectomy": 57, "gender": "male"}]
    (src / "kits19" / "data" / "kits.json").write_text(json.dumps(clinical))
    out = tmp_path / "kidney"
    import_dataset("kits", src, "kidney", out, spacing=TARGET, progress=False)
    ds = Dataset.open(out)
    assert ds.case_ids() == ["case_00000", "case_00301", "case_00302", "case_00303", "case_00304"]
    assert "skipping" in capsys.readouterr().err and "case_00210" not in ds.case_ids()
    assert ds.items(["case_00000"])[0]["age"] == 57 and ds.items(["case_00000"])[0]["sex"] == "M"
    cyst = np.zeros(SHAPE, bool)
    cyst[CYST] = True
    for case_id in ("case_00000", "case_00301", "case_00302"):
        _, labels, affine = _assert_geometry(ds, case_id)
        assert set(np.unique(labels)) == {0, 1, 2}
        assert _value_at_world(labels, affine, _world_centroid(cyst, AFFINE)) == 1  # cyst -> kidney
    assert check_dataset(out) == []


def test_lits_uncompressed_batches(tmp_path):
    src = tmp_path / "LiTS"
    for batch, number in (("Training Batch 1", 0), ("Training Batch 1", 3), ("Training Batch 2", 27),
                          ("Training Batch 2", 28), ("Training Batch 2", 130)):
        ct, labels = _volumes()
        if number == 130:  # stored as uint16 + intercept -1024, as some converters do
            img = nib.Nifti1Image((ct.astype(np.int32) + 1024).astype(np.uint16), AFFINE)
            img.header.set_slope_inter(1.0, -1024.0)
            nib.save(img, str(src / batch / f"volume-{number}.nii"))
        else:
            _save(src / batch / f"volume-{number}.nii", ct)
        _save(src / batch / f"segmentation-{number}.nii", labels)
    out = tmp_path / "lits"
    assert main(["data", "import", "--format", "lits", str(src), "--organ", "liver", "--out", str(out),
                 "--spacing", *map(str, TARGET)]) == 0
    ds = Dataset.open(out)
    assert ds.case_ids() == ["lits_000", "lits_003", "lits_027", "lits_028", "lits_130"]
    assert set(ds.cases["role"]) == {"labeled"} and ds.cases["has_tumor"].all()
    _assert_geometry(ds, "lits_130")
    assert len(ds.splits) == 5


def test_atlas_kidney_merges_left_and_right(tmp_path):
    src = _atlas(tmp_path, ["kidney_left", "kidney_right"], n=5, lesion_case=False)
    out = tmp_path / "kidney"
    import_dataset("atlas", src, "kidney", out, spacing=TARGET, progress=False)
    ds = Dataset.open(out)
    assert set(ds.cases["role"]) == {"healthy"} and not ds.cases["has_tumor"].any()
    labels = np.asanyarray(nib.load(str(ds.labels_path("BDMAP_00000001"))).dataobj)
    source = np.zeros(SHAPE, np.uint8)
    source[ORGAN[0], ORGAN[1], 3:9] = 1  # union of both 3-slice pieces
    assert set(np.unique(labels)) == {0, 1}
    assert (labels == 1).sum() * np.prod(TARGET) == pytest.approx(source.sum() * 0.8 * 0.8 * 2.5, rel=0.05)


def test_bad_inputs_fail_cleanly(tmp_path, capsys):
    out = tmp_path / "liver"
    with pytest.raises(InputError, match=r"labelsTr/liver_2.nii.gz: label values \[7\] unknown"):
        import_dataset("msd", _msd(tmp_path, bad_label=True), "liver", out, spacing=TARGET, progress=False)
    assert not out.exists() and not list(tmp_path.glob(".liver.tmp-*"))  # nothing half-written
    with pytest.raises(InputError, match="--organ pancreas: format lits holds liver data"):
        import_dataset("lits", tmp_path, "pancreas", out, progress=False)
    meta = json.loads((tmp_path / "Task03_Liver" / "dataset.json").read_text())
    with pytest.raises(InputError, match="label 1 is 'liver', expected 'pancreas'"):
        import_dataset("msd", tmp_path / "Task03_Liver", "pancreas", out, progress=False)
    out.mkdir()
    (out / "notes.txt").write_text("x")
    code = main(["data", "import", "--format", "msd", str(tmp_path / "Task03_Liver"), "--organ", "liver",
                 "--out", str(out)])
    assert code == 2 and "already exists and is not empty; use --append" in capsys.readouterr().err
    assert len(meta["training"]) == 3


def test_atlas_max_cases_is_a_seeded_subset(tmp_path, capsys):
    src = _atlas(tmp_path, ["liver"], n=5, lesion_case=False)
    ids = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 3)):
        assert main(["data", "import", "--format", "atlas", str(src), "--organ", "liver", "--out",
                     str(tmp_path / name), "--spacing", *map(str, TARGET), "--max-cases", "3", "--seed", str(seed)]) == 0
        ids[name] = Dataset.open(tmp_path / name).case_ids()
    all_ids = {f"BDMAP_{i:08d}" for i in range(1, 6)}
    assert len(ids["a"]) == 3 and set(ids["a"]) < all_ids and ids["a"] == sorted(ids["a"])
    assert ids["a"] == ids["b"] and ids["c"] != ids["a"]  # same seed, same cases
    assert main(["data", "import", "--format", "atlas", str(src), "--organ", "liver", "--out",
                 str(tmp_path / "d"), "--max-cases", "0"]) == 2
    assert "--max-cases 0" in capsys.readouterr().err and not (tmp_path / "d").exists()
