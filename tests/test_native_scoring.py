"""Native-grid scoring: a case imported from a 0.8 x 0.8 x 5 mm CT keeps its original-grid labels,
and a cell's predictions (on the 1 mm copy) are mapped back (nearest) and scored on the 5 mm grid,
where the scores differ from scoring on the 1 mm staircase copy."""
import json

import nibabel as nib
import numpy as np
import pytest

from benchmark.data import Dataset, import_dataset
from benchmark.label_files import Geometry, load_labels, map_to_grid
from benchmark.metrics import evaluate_case, evaluate_folder

NATIVE_SPACING = (0.8, 0.8, 5.0)
NATIVE_SHAPE = (80, 80, 12)  # 64 x 64 x 60 mm
CENTRE_MM = np.array([32.0, 32.0, 30.0])
ORGAN_R_MM, TUMOR_R_MM = 22.0, 9.0


def sphere_labels(spacing, shape, offset_mm=(0.0, 0.0, 0.0)):
    """Organ and tumor balls sampled at the voxel centres of a grid whose voxel 0 is at offset + spacing/2."""
    axes = [offset + (np.arange(n) + 0.5) * s for n, s, offset in zip(shape, spacing, offset_mm)]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    dist = np.sqrt((x - CENTRE_MM[0]) ** 2 + (y - CENTRE_MM[1]) ** 2 + (z - CENTRE_MM[2]) ** 2)
    labels = np.zeros(shape, np.uint8)
    labels[dist <= ORGAN_R_MM] = 1
    labels[np.sqrt((x - 26) ** 2 + (y - 30) ** 2 + (z - 30) ** 2) <= TUMOR_R_MM] = 2
    return labels


def affine_of(spacing, offset_mm=(0.0, 0.0, 0.0)):
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = np.asarray(offset_mm) + np.asarray(spacing) / 2  # centre of voxel 0
    return affine


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """An MSD-layout source at 0.8 x 0.8 x 5 mm imported at 1 mm, and a 'prediction' on the 1 mm
    grid that is the smooth anatomy itself (what a good model predicts)."""
    root = tmp_path_factory.mktemp("native")
    src = root / "Task03_Liver"
    labels = sphere_labels(NATIVE_SPACING, NATIVE_SHAPE)
    ct = np.where(labels > 0, 60, -100).astype(np.int16)
    for sub, array in (("imagesTr", ct), ("labelsTr", labels)):
        (src / sub).mkdir(parents=True)
        nib.save(nib.Nifti1Image(array, affine_of(NATIVE_SPACING)), str(src / sub / "liver_0.nii.gz"))
    (src / "dataset.json").write_text(json.dumps({
        "name": "Liver", "labels": {"0": "background", "1": "liver", "2": "cancer"},
        "training": [{"image": "./imagesTr/liver_0.nii.gz", "label": "./labelsTr/liver_0.nii.gz"}]}))
    out = import_dataset("msd", src, "liver", root / "liver", spacing=(1.0, 1.0, 1.0), progress=False)
    ds = Dataset.open(out)
    copy, copy_grid = load_labels(ds.labels_path("liver_0"), "1 mm copy")
    pred = sphere_labels((1.0, 1.0, 1.0), copy.shape)  # the 1 mm grid starts at the same outer edge
    preds = root / "preds"
    preds.mkdir()
    nib.save(nib.Nifti1Image(pred, np.asarray(copy_grid.affine)), str(preds / "liver_0.nii.gz"))
    return ds, preds, pred, copy, copy_grid


def test_import_keeps_the_original_grid_labels(imported):
    ds, *_ = imported
    native, grid = load_labels(ds.native_labels_path("liver_0"), "native labels")
    assert ds.native_labels_path("liver_0").name == "labels_native.nii.gz"
    assert grid.shape == NATIVE_SHAPE and grid.spacing == pytest.approx(NATIVE_SPACING)
    assert np.array_equal(native, sphere_labels(NATIVE_SPACING, NATIVE_SHAPE))
    assert Geometry.spacing.fget(load_labels(ds.labels_path("liver_0"), "copy")[1]) == pytest.approx((1, 1, 1))


def test_a_cell_scores_on_the_5mm_grid_not_the_1mm_copy(imported, tmp_path):
    ds, preds, pred, copy, copy_grid = imported
    summary = evaluate_folder(preds, ds, out=tmp_path / "summary.json", progress=False)
    case = summary["metric_per_case"][0]
    assert case["spacing"] == pytest.approx(list(NATIVE_SPACING)) and case["shape"] == list(NATIVE_SHAPE)
    assert case["resampled_from"] == {"shape": list(copy.shape), "spacing": [1.0, 1.0, 1.0]}

    native, native_grid = load_labels(ds.native_labels_path("liver_0"), "native")
    on_native = evaluate_case(map_to_grid(pred, copy_grid, native_grid), native, NATIVE_SPACING)
    on_copy = evaluate_case(pred, copy, (1.0, 1.0, 1.0))
    for key in ("organ_dsc", "organ_nsd", "tumor_dsc", "tumor_nsd"):
        assert case[key] == pytest.approx(on_native[key], abs=1e-12)
    # the 1 mm copy's 5 mm staircase is scored against the smooth 1 mm prediction: lower DSC and NSD
    # (measured: tumor DSC 0.949 native vs 0.875 on the copy, organ 0.987 vs 0.956; NSD 1.0 vs 0.9986)
    assert on_copy["tumor_dsc"] < case["tumor_dsc"] - 0.05 and on_copy["organ_dsc"] < case["organ_dsc"] - 0.02
    assert on_copy["tumor_nsd"] < case["tumor_nsd"] == 1.0 and on_copy["organ_nsd"] < case["organ_nsd"] == 1.0


def test_data_check_reads_the_native_labels_before_any_run(imported, tmp_path):
    import shutil

    from benchmark.data import check_dataset

    ds, *_ = imported
    copy = tmp_path / "liver"
    shutil.copytree(ds.root, copy)
    assert check_dataset(copy) == []
    (copy / "cases" / "liver_0" / "labels_native.nii.gz").write_bytes(b"\x1f\x8b truncated")
    assert any("labels_native.nii.gz: cannot read original-grid labels" in p for p in check_dataset(copy))
