"""The organ filter as a setting (`[evaluate] organ_filter = reference | predicted | none`, margin
pinned at 0 mm), the scoring settings' load-time checks, the report header stating them, and the
tumor-wise demographic sensitivities logged to MLflow."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from test_runner_fakes import FAKE_STAGES, fake_predict, fresh_tracking_uri, make_fake_dataset, write_grid
from benchmark.cell_pipeline import organ_filter_kwargs
from benchmark.errors import InputError
from benchmark.grid import parse_grid
from models.postprocess import postprocess

GRID = 'name = "g"\n[datasets]\nliver = "/data/liver"\n'


def test_scoring_settings_defaults_and_type_checks():
    grid = parse_grid(GRID)
    assert (grid.evaluate["organ_filter"], grid.evaluate["min_lesion_mm3"], grid.evaluate["patient_threshold_mm3"]) == (
        "reference", 8.0, 70.0)
    assert parse_grid(GRID + "[evaluate]\npatient_threshold_mm3 = 30\n").evaluate["patient_threshold_mm3"] == 30.0
    for line, field in (('organ_filter = "oracle"', "evaluate.organ_filter"),
                        ('min_lesion_mm3 = "8"', "evaluate.min_lesion_mm3"),
                        ("patient_threshold_mm3 = -1", "evaluate.patient_threshold_mm3"),
                        ("min_lesion_mm3 = true", "evaluate.min_lesion_mm3"),
                        ("min_voxels = 8", "evaluate.min_voxels")):
        with pytest.raises(InputError, match=field.replace(".", r"\.")):
            parse_grid(GRID + f"[evaluate]\n{line}\n")


def _case():
    """Reference organ x in 4..11 at 0.8 mm; the prediction's tumor spans x 8..12: voxel 12 lies
    one voxel (0.8 mm) outside the reference organ; the predicted organ reaches x 13."""
    ref_organ = np.zeros((20, 10, 10), bool)
    ref_organ[4:12, 2:8, 2:8] = True
    pred = np.zeros((20, 10, 10), np.uint8)
    pred[4:14, 2:8, 2:8] = 1
    pred[8:13, 4:6, 4:6] = 2
    return pred, ref_organ


def test_default_margin_is_zero_mm_tumor_and_organ():
    pred, ref_organ = _case()
    kept = postprocess(pred, (0.8, 0.8, 0.8), ref_organ)  # the default margin, as the runner calls it
    assert (kept[8:12, 4:6, 4:6] == 2).all()  # inside the reference organ: kept
    assert not (kept[12] == 2).any()  # 0.8 mm outside it: removed (margin 0 mm)


def test_each_organ_filter_value_keeps_the_tumor_it_says(tmp_path):
    pred, ref_organ = _case()
    dataset = SimpleNamespace(labels_path=lambda c: tmp_path / f"{c}.nii.gz")
    kwargs = {name: organ_filter_kwargs(name, dataset, ["a"]) for name in ("reference", "predicted", "none")}
    assert kwargs["reference"] == {"organ_masks": {"a": str(tmp_path / "a.nii.gz")}}
    masks = {"reference": ref_organ, "predicted": None, "none": None}
    outside = {}
    for name, kw in kwargs.items():
        margin = kw.get("margin_mm", 0.0)
        outside[name] = bool((postprocess(pred, (0.8,) * 3, masks[name], margin) == 2)[12].any())
    assert outside == {"reference": False, "predicted": True, "none": True}
    far = pred.copy()
    far[17:19, 4:6, 4:6] = 2  # a tumor call away from every organ: only 'none' keeps it
    assert not (postprocess(far, (0.8,) * 3, None, kwargs["predicted"].get("margin_mm", 0.0)) == 2)[17:].any()
    assert (postprocess(far, (0.8,) * 3, None, kwargs["none"]["margin_mm"])[17:19, 4:6, 4:6] == 2).all()
    with pytest.raises(InputError, match="organ_filter"):
        organ_filter_kwargs("oracle", dataset, ["a"])


def recording_predict(ckpt_path, items, out_dir, *, organ_masks=None, margin_mm=0.0, **kwargs):
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / "filter.json").write_text(json.dumps({"masks": organ_masks, "margin": margin_mm}))
    return fake_predict(ckpt_path, items, out_dir, **kwargs)


def test_grid_setting_reaches_prediction_mlflow_and_the_report_header(tmp_path):
    from mlflow import MlflowClient

    from benchmark.runner import run_grid
    from reports.run_scope import describe_run

    datasets = {"liver": make_fake_dataset(tmp_path / "ds" / "liver", "liver")}
    grid = write_grid(tmp_path / "grid.toml", datasets, "filter", tmp_path / "results", regimes='["real"]',
                      extra='[evaluate]\norgan_filter = "predicted"\npatient_threshold_mm3 = 30\n')
    uri = fresh_tracking_uri(tmp_path)
    stages = dataclasses.replace(FAKE_STAGES, predict=recording_predict)
    (outcome,) = run_grid(grid, tracking_uri=uri, stages=stages, progress=False)
    recorded = json.loads((Path(outcome.results_dir) / "predictions" / "liver" / "filter.json").read_text())
    assert recorded == {"masks": None, "margin": 0.0}
    params = MlflowClient(tracking_uri=uri).get_run(outcome.run_id).data.params
    assert params["evaluate.organ_filter"] == "predicted" and params["evaluate.patient_threshold_mm3"] == "30.0"
    cell = SimpleNamespace(organ="liver", fold=0, params=params, tags={})
    header = " ".join(describe_run(SimpleNamespace(cells={0: cell}, summary=lambda c: None)))
    assert "organ filter 'predicted' (margin 0 mm" in header and "above 30.0 mm³" in header


def test_mlflow_demographic_sensitivities_are_tumor_wise():
    """One patient, two lesions, one hit: the patient is a true positive (patient sensitivity 1)
    but the tumor-wise sensitivity of the group is 1/2, which is what Fig 14 shows."""
    from benchmark.metrics import flat_metrics, summarize

    lesion = {"volume_mm3": 100.0, "radius_mm": 2.9, "size_bin": "0-5", "centroid_vox": [0, 0, 0]}
    record = {"case_id": "a", "age": 55, "sex": "F", "has_tumor": True, "pred_has_tumor": True,
              "organ_dsc": 0.9, "organ_nsd": 0.9, "tumor_dsc": 0.5, "tumor_nsd": 0.5, "false_positives": [],
              "lesions": [{**lesion, "detected": True}, {**lesion, "detected": False}]}
    summary = summarize([record])
    flat = flat_metrics(summary)
    assert flat["sensitivity_age_50_59"] == 0.5 and flat["sensitivity_sex_F"] == 0.5
    assert flat["patient_sensitivity"] == 1.0 and summary["demographics"]["sex"]["F"]["patient_sensitivity"] == 1.0
