"""pyradiomics feature extraction on phantom-like tumors."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from reports.radiomics import EXPECTED_COUNTS, ExtractorConfig, counts_per_class, extract_roi_features, extract_table


def _tumor(rng, radius_vox=5.0, shape=(24, 24, 20)):
    g = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"))
    centre = np.asarray(shape) / 2 + rng.uniform(-1, 1, 3)
    mask = sum(((g[a] - centre[a]) / (radius_vox * (1 + 0.2 * a))) ** 2 for a in range(3)) <= 1
    ct = rng.normal(60, 12, shape)
    ct[mask] = rng.normal(15, 18, int(mask.sum()))
    return ct.astype(np.float32), mask


def test_paper_feature_set_has_91_finite_features_per_tumor():
    ct, mask = _tumor(np.random.default_rng(0))
    row = extract_roi_features(ct, mask, (2.0, 2.0, 2.0), ExtractorConfig())
    assert row["status"] == "ok"
    counts = counts_per_class(row)
    assert counts == {"shape": 16, "glcm": 24, "glrlm": 16, "glszm": 16, "ngtdm": 5, "gldm": 14}
    assert sum(counts.values()) == 91
    values = np.array([v for k, v in row.items() if k.startswith("original_")])
    assert np.isfinite(values).all()
    # the deprecated shape features the paper counts are enabled, VoxelVolume is not
    assert {"original_shape_Compactness1", "original_shape_SphericalDisproportion"} <= set(row)
    assert "original_shape_VoxelVolume" not in row


def test_firstorder_is_optional_and_shape_volume_matches_the_mask():
    ct, mask = _tumor(np.random.default_rng(1))
    row = extract_roi_features(ct, mask, (1.5, 1.5, 1.5), ExtractorConfig(firstorder=True, resample_mm=None))
    assert counts_per_class(row)["firstorder"] == EXPECTED_COUNTS["firstorder"]
    # mesh volume of a voxelised ellipsoid is within 10% of its voxel count x voxel volume
    assert row["original_shape_MeshVolume"] == pytest.approx(mask.sum() * 1.5 ** 3, rel=0.1)
    # the ROI mean recomputed by hand (no resampling; HU clip does not touch these values)
    assert row["original_firstorder_Mean"] == pytest.approx(np.clip(ct[mask], -200, 300).mean(), rel=1e-4)


def test_too_small_tumors_are_recorded_not_crashed_on():
    ct, _ = _tumor(np.random.default_rng(2))
    speck = np.zeros(ct.shape, bool)
    speck[5, 5, 5] = True
    assert extract_roi_features(ct, speck, (2, 2, 2), ExtractorConfig())["status"] == "too_small"
    line = np.zeros(ct.shape, bool)
    line[3:13, 5, 5] = True  # 10 voxels but one-dimensional: pyradiomics refuses it
    row = extract_roi_features(ct, line, (2, 2, 2), ExtractorConfig(resample_mm=None))
    assert row["status"].startswith("failed")


def test_extract_table_in_parallel_equals_serial(tmp_path):
    rng = np.random.default_rng(3)
    rows = []
    for i in range(3):
        ct, mask = _tumor(rng, radius_vox=3 + i)
        for name, arr in (("ct", ct), ("mask", mask.astype(np.uint8))):
            nib.save(nib.Nifti1Image(arr, np.diag([2, 2, 2, 1.0])), tmp_path / f"{name}{i}.nii.gz")
        rows.append({"tumor_id": f"t{i}", "ct_path": tmp_path / f"ct{i}.nii.gz", "mask_path": tmp_path / f"mask{i}.nii.gz"})
    records = pd.DataFrame(rows)
    config = ExtractorConfig(resample_mm=2.0)
    serial = extract_table(records, config, jobs=1, progress=False)
    parallel = extract_table(records, config, jobs=2, progress=False)
    pd.testing.assert_frame_equal(serial, parallel)
    assert list(serial["status"]) == ["ok"] * 3
    assert serial.columns[5].startswith("original_shape_")  # grouped by class, shape first
    # a saved config documents the settings
    assert json.loads(json.dumps(config.to_dict()))["expected_counts"]["glcm"] == 24
