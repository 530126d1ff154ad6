"""Slow: the full demo (`make demo`'s grid, ~10 min on 2 idle cores) reaches numbers that mean something.

Asserted on what the cells logged to MLflow: every cell's organ DSC >= 0.85 on its test fold; the
`real` regime's tumor DSC >= 0.5 and patient specificity >= 0.5 on every organ; test folds of >= 10
tumor and >= 5 healthy cases; the shipped tiny DiffTumor generators' early tumors within 15 HU of
the phantom's real early tumors in contrast to the organ, except on the kidney, where they are not
(KNOWN_CONTRAST_MISSES; docs/difftumor.md says why): the test fails when that changes either way.
Run with ``pytest -m slow tests/test_demo_slow.py``.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
KNOWN_CONTRAST_MISSES = {"kidney"}  # issue 19: painted 38 HU too dark; update this when the generator changes


def test_demo_grid_meets_the_thresholds(tmp_path):
    from mlflow.tracking import MlflowClient

    from benchmark import demo
    from benchmark.demo_contrast import gap_hu

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = demo.run_demo(tmp_path / "out", tracking_uri=uri, progress=False)
    print(demo.format_demo_result(result))
    assert result.cells == {"finished": 9, "skipped": 0, "failed": 0}
    assert result.generators.startswith("shipped")  # the demo did not spend its budget on generators

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(demo.DEMO_EXPERIMENT)
    runs = [r for r in client.search_runs([experiment.experiment_id]) if "regime" in r.data.params]
    assert len(runs) == 9
    for run in runs:
        params, metrics = run.data.params, run.data.metrics
        cell = f"{params['organ']}/{params['regime']}"
        assert metrics["organ_dsc"] >= 0.85, cell
        if params["regime"] == "real":
            assert metrics["tumor_dsc"] >= 0.5, cell
            assert metrics["patient_specificity"] >= 0.5, cell
        patient = json.loads((Path(run.data.tags["tumorbench.results_dir"]) / "summary.json").read_text())["patient"]
        assert patient["tp"] + patient["fn"] >= 10 and patient["tn"] + patient["fp"] >= 5, cell

    real = {c.organ: c for c in result.contrasts if c.source == "real"}
    synthetic = [c for c in result.contrasts if c.source == "difftumor"]
    assert len(synthetic) == 3 and all(c.n >= 5 and real[c.organ].n >= 5 for c in synthetic)
    gaps = {c.organ: gap_hu(c, real[c.organ]) for c in synthetic}
    assert {organ for organ, gap in gaps.items() if gap > 15.0} == KNOWN_CONTRAST_MISSES, gaps
