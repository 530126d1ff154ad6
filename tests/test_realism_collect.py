"""Collecting real and size-matched synthetic tumor crops from canonical datasets."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from test_realism_helpers import toy_generator, write_dataset  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def liver(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data") / "liver", "liver", n_labeled=4, n_healthy=2, seed=3)


def test_collect_saves_real_and_size_matched_synthetic_crops(liver, tmp_path, toy_generator):
    from benchmark.realism_collect import collect_tumors

    table = collect_tumors([liver], ["sphere"], 6, tmp_path, seed=1, progress=False)
    saved = pd.read_csv(tmp_path / "tumors.csv")
    assert len(saved) == len(table) == 12
    real, synth = table[table.source == "real"], table[table.source == "sphere"]
    assert len(real) == 6 and len(synth) == 6
    # one synthetic tumor per real one, of the size type matching the real tumor's radius
    assert sorted(synth.requested_size_type) == sorted(real.size_type)
    assert set(real.case_id) <= {f"liver_{i:03d}" for i in range(4)}          # labeled cases
    assert set(synth.case_id) <= {"liver_004", "liver_005"}                   # healthy cases
    for row in table.itertuples():
        ct = nib.load(tmp_path / row.roi_ct_path)
        mask = np.asarray(nib.load(tmp_path / row.roi_mask_path).dataobj)
        assert ct.shape == mask.shape and np.allclose(ct.header.get_zooms(), (2, 2, 2))
        volume = mask.sum() * 8.0
        assert volume == pytest.approx(row.volume_mm3)
        # the ROI keeps a 3-voxel margin so the tumor never touches the crop border (unless the volume ends)
        assert mask[0].sum() == 0 and mask[-1].sum() == 0
        # synthetic tumors are darker than the organ around them (the toy generator subtracts 45 HU)
        inside = np.asarray(ct.dataobj)[mask > 0].mean()
        assert inside < 60 - 15


def test_collect_is_deterministic_for_a_seed(liver, tmp_path, toy_generator):
    from benchmark.realism_collect import collect_tumors

    a = collect_tumors([liver], ["sphere"], 3, tmp_path / "a", seed=5, progress=False)
    b = collect_tumors([liver], ["sphere"], 3, tmp_path / "b", seed=5, progress=False)
    pd.testing.assert_frame_equal(a, b)


def test_no_healthy_case_is_a_clear_error(tmp_path, toy_generator):
    from benchmark.errors import InputError
    from benchmark.realism_collect import collect_tumors

    data = write_dataset(tmp_path / "d", "kidney", n_labeled=2, n_healthy=0, seed=0)
    with pytest.raises(InputError, match="healthy"):
        collect_tumors([data], ["sphere"], 2, tmp_path / "out", progress=False)


def test_hu_generator_tumors_sit_in_the_organ_of_healthy_cases(liver, tmp_path):
    pytest.importorskip("synthesis.hu")
    from benchmark.data import Dataset
    from benchmark.io import load_nifti
    from benchmark.realism_collect import collect_tumors

    table = collect_tumors([liver], ["hu"], 4, tmp_path, seed=0, progress=False)
    hu = table[table.source == "hu"]
    assert 1 <= len(hu) <= 4 and set(hu.requested_size_type) <= {"tiny", "small", "medium", "large"}
    dataset = Dataset.open(liver)
    for row in hu.itertuples():
        assert row.case_id in dataset.case_ids("healthy")
        ct = np.asarray(nib.load(tmp_path / row.context_ct_path).dataobj)
        mask = np.asarray(nib.load(tmp_path / row.context_mask_path).dataobj) > 0
        # hypo-attenuating, as Hu et al.: darker than the toy liver parenchyma (60 +/- 12 HU)
        assert ct[mask].mean() < 60 - 15
        # Hu tumors are clipped to the organ: every tumor voxel is an organ voxel of that case
        labels = np.asarray(load_nifti(dataset.labels_path(row.case_id)).dataobj)
        assert labels.sum() > 0 and row.volume_mm3 <= (labels > 0).sum() * 8.0
