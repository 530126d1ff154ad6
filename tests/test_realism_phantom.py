"""Integration with the real parts: phantom datasets (benchmark.data) and the Hu generator."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

data = pytest.importorskip("benchmark.data")
pytest.importorskip("synthesis.hu")
if not hasattr(data, "generate_phantom_dataset"):
    pytest.skip("benchmark.data.generate_phantom_dataset not merged yet", allow_module_level=True)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    root = tmp_path_factory.mktemp("phantom")
    data.generate_phantom_dataset(root / "liver", "liver", 6, seed=0, shape=(64, 56, 40), progress=False)
    return root / "liver"


def test_hu_tumors_on_phantom_healthy_cases_lie_in_the_organ(phantom, tmp_path):
    from benchmark.data import Dataset
    from benchmark.realism_collect import collect_tumors

    table = collect_tumors([phantom], ["hu"], 4, tmp_path, seed=0, progress=False)
    real, hu = table[table.source == "real"], table[table.source == "hu"]
    assert len(real) >= 1 and 1 <= len(hu) <= len(real)
    dataset = Dataset.open(phantom)
    assert set(hu.case_id) <= set(dataset.case_ids("healthy"))
    assert set(real.case_id) <= set(dataset.case_ids("labeled"))
    for row in hu.itertuples():
        ct = np.asarray(nib.load(tmp_path / row.roi_ct_path).dataobj)
        mask = np.asarray(nib.load(tmp_path / row.roi_mask_path).dataobj) > 0
        case_ct = np.asarray(nib.load(dataset.ct_path(row.case_id)).dataobj)
        organ = np.asarray(nib.load(dataset.labels_path(row.case_id)).dataobj) == 1
        # Hu et al. tumors are hypo-attenuating: darker than the healthy organ they were put in
        assert ct[mask].mean() < case_ct[organ].mean() - 10


@pytest.mark.slow
def test_radiomics_on_phantom_hu_runs_end_to_end(phantom, tmp_path):
    from benchmark.realism_run import run_radiomics

    summary = run_radiomics([phantom], ["hu"], None, tmp_path / "out", seed=0, n_perm=19, n_repeats=5,
                            progress=False)
    scores = pd.read_csv(tmp_path / "out" / "realism_scores.csv")
    assert set(scores.generator) == {"hu"} and (scores.n_matched == scores.n_real // 2).all()
    assert summary["n_features"] > 60
