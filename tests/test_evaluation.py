"""evaluate_case / evaluate_folder on a tiny hand-written canonical dataset."""
import json
import math

import nibabel as nib
import numpy as np
import pytest

from benchmark.errors import InputError
from benchmark.metrics import evaluate_case, evaluate_folder, flat_metrics, surface_dice

SHAPE = (24, 24, 16)
SPACING = (2.0, 2.0, 2.0)  # 8 mm^3 voxels
ORGAN = (slice(2, 22), slice(2, 22), slice(2, 14))


def organ_labels():
    labels = np.zeros(SHAPE, dtype=np.uint8)
    labels[ORGAN] = 1
    return labels


def with_tumor(labels, low, size):
    labels = labels.copy()
    labels[tuple(slice(a, a + n) for a, n in zip(low, size))] = 2
    return labels


def save(path, labels):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(labels.astype(np.uint8), np.diag([*SPACING, 1.0])), str(path))


# case_id: (age, sex, reference, prediction); patient call = official rule (1 mm, 3x3x3 erosion, > 70 mm^3)
#   c1 <50 M  tumor 3^3 (216 mm^3, r 3.72, bin 0-5), predicted exactly       -> lesion hit, DSC 1;
#             patient FN: 6x6x6 mm eroded to 4x4x4 = 64 mm^3 <= 70
#   c2 50s F  tumor 5^3 (1000 mm^3, r 6.20, bin 5-10), prediction organ only -> FN, DSC 0
#   c3 60s M  healthy, prediction has a 2x2x3 tumor (12 voxels, 96 mm^3)     -> false-positive lesion;
#             patient TN: 4x4x6 mm eroded to 2x2x4 = 16 mm^3
#   c4 70+ F  healthy, clean prediction; organ predicted 2 slices short      -> TN
#   c5 ?  ?   tumor 4^3 (512 mm^3, r 4.96, bin 0-5), predicted half (4x4x2)  -> TP (8x8x4 mm eroded to
#             6x6x2 = 72 mm^3 > 70), DSC 2/3
def build_cases():
    organ = organ_labels()
    short_organ = organ.copy()
    short_organ[:, :, 12:14] = 0
    return {
        "c1": (45, "M", with_tumor(organ, (5, 5, 5), (3, 3, 3)), with_tumor(organ, (5, 5, 5), (3, 3, 3))),
        "c2": (55, "F", with_tumor(organ, (10, 10, 5), (5, 5, 5)), organ),
        "c3": (65, "M", organ, with_tumor(organ, (15, 15, 8), (2, 2, 3))),
        "c4": (75, "F", organ, short_organ),
        "c5": ("", "", with_tumor(organ, (6, 12, 4), (4, 4, 4)), with_tumor(organ, (6, 12, 4), (4, 4, 2))),
    }


@pytest.fixture()
def tiny(tmp_path):
    root, preds = tmp_path / "ds", tmp_path / "preds"
    root.mkdir()
    (root / "dataset.json").write_text(json.dumps({
        "name": "tiny", "organ": "liver", "labels": {"background": 0, "organ": 1, "tumor": 2},
        "spacing": list(SPACING), "source_format": "phantom", "num_cases": 5}))
    rows = ["case_id,age,sex,has_tumor,role,source"]
    for case_id, (age, sex, ref, pred) in build_cases().items():
        has_tumor = int((ref == 2).any())
        rows.append(f"{case_id},{age},{sex},{has_tumor},{'labeled' if has_tumor else 'healthy'},phantom")
        save(root / "cases" / case_id / "labels.nii.gz", ref)
        save(preds / f"{case_id}.nii.gz", pred)
    (root / "cases.csv").write_text("\n".join(rows) + "\n")
    return root, preds


def test_evaluate_folder_summary_equals_hand_computed_values(tiny):
    root, preds = tiny
    summary = evaluate_folder(preds, root, progress=False)
    written = (preds / "summary.json").read_text()
    assert json.loads(written, parse_constant=lambda c: pytest.fail(f"{c} in summary.json")) == summary

    per_case = {r["case_id"]: r for r in summary["metric_per_case"]}
    assert [per_case[c]["tumor_dsc"] for c in ("c1", "c2", "c5")] == pytest.approx([1.0, 0.0, 2 / 3])
    assert (per_case["c5"]["age"], per_case["c5"]["sex"], per_case["c1"]["age"], per_case["c1"]["sex"]) == (
        None, None, 45, "M")
    organ_voxels = 20 * 20 * 12
    assert per_case["c4"]["organ_dsc"] == pytest.approx(2 * 20 * 20 * 10 / (organ_voxels + 20 * 20 * 10))
    assert summary["mean"]["organ_dsc"] == pytest.approx((4 + per_case["c4"]["organ_dsc"]) / 5)
    assert summary["mean"]["tumor_dsc"] == pytest.approx((1 + 0 + 2 / 3) / 3)  # healthy cases excluded
    assert per_case["c1"]["organ_nsd"] == 1.0
    cases = build_cases()  # NSD through NIfTI (Fortran-ordered arrays) equals NSD on the arrays
    for case_id, kind in (("c4", "organ"), ("c5", "tumor")):
        ref, pred = cases[case_id][2], cases[case_id][3]
        masks = (pred >= 1, ref >= 1) if kind == "organ" else (pred == 2, ref == 2)
        expected = surface_dice(*masks, SPACING)
        assert 0.0 < expected < 1.0 and per_case[case_id][f"{kind}_nsd"] == pytest.approx(expected, abs=1e-12)

    assert summary["patient"] == {"sensitivity": pytest.approx(1 / 3), "specificity": 1.0,
                                  "tp": 1, "fn": 2, "tn": 2, "fp": 0}
    assert [per_case[c]["pred_tumor_eroded_mm3"] for c in ("c1", "c2", "c3", "c4", "c5")] == [64, 0, 16, 0, 72]
    assert per_case["c3"]["pred_tumor_components"] == 1 and per_case["c1"]["spacing"] == list(SPACING)
    assert summary["size_bins"]["0-5"] == {"n": 2, "detected": 2, "sensitivity": 1.0}
    assert summary["size_bins"]["5-10"] == {"n": 1, "detected": 0, "sensitivity": 0.0}
    assert summary["size_bins"]["20+"] == {"n": 0, "detected": 0, "sensitivity": None}
    assert summary["n_early"] == 3 and summary["early_sensitivity"] == pytest.approx(2 / 3)
    lesion = per_case["c2"]["lesions"][0]
    assert lesion["volume_mm3"] == 1000.0 and lesion["radius_mm"] == pytest.approx((750 / math.pi) ** (1 / 3))
    assert lesion["centroid_vox"] == [12.0, 12.0, 7.0]  # full-volume coordinates
    assert per_case["c3"]["false_positives"][0]["volume_mm3"] == 96.0

    age, sex = summary["demographics"]["age"], summary["demographics"]["sex"]
    def group(n, dsc, tumor_sens, n_lesions, patient_sens, patient_spec):
        return {"n": n, "tumor_dsc": dsc, "tumor_sensitivity": tumor_sens, "n_lesions": n_lesions,
                "patient_sensitivity": patient_sens, "patient_specificity": patient_spec}

    assert age["<50"] == group(1, 1.0, 1.0, 1, 0.0, None)  # lesion hit, patient call negative (64 mm^3)
    assert age["50-59"] == group(1, 0.0, 0.0, 1, 0.0, None)
    assert age["60-69"] == group(1, None, None, 0, None, 1.0)
    assert age["70+"] == group(1, None, None, 0, None, 1.0)
    assert sex["M"] == group(2, 1.0, 1.0, 1, 0.0, 1.0)
    assert sex["F"] == group(2, 0.0, 0.0, 1, 0.0, 1.0)

    flat = flat_metrics(summary)
    assert flat["sens_0_5"] == 1.0 and flat["sens_5_10"] == 0.0 and "sens_20_inf" not in flat
    assert flat["tumor_dsc_age_lt50"] == 1.0 and flat["sensitivity_sex_F"] == 0.0
    # tumor-wise, as the report's Fig 14: c1's lesion is hit although its patient call is negative
    assert flat["sensitivity_age_lt50"] == 1.0 and flat["sensitivity_sex_M"] == 1.0


def test_evaluate_folder_subset_output_path_and_workers(tiny, tmp_path):
    root, preds = tiny
    out = tmp_path / "results"
    summary = evaluate_folder(preds, root, case_ids=["c3", "c4"], out=out, progress=False)
    assert json.loads((out / "summary.json").read_text()) == summary
    parallel = evaluate_folder(preds, root, case_ids=["c3", "c4"], out=tmp_path / "p.json", progress=False,
                               workers=2)
    assert parallel == summary and (tmp_path / "p.json").is_file()
    assert summary["mean"]["tumor_dsc"] is None and summary["early_sensitivity"] is None
    assert summary["patient"]["sensitivity"] is None and summary["patient"]["specificity"] == 1.0  # c3: 16 mm^3
    assert (out / "per_case.csv").read_text().splitlines()[0].startswith("case_id,age,sex,has_tumor,pred_has_tumor")


def test_missing_prediction_names_the_file_and_writes_nothing(tiny):
    root, preds = tiny
    (preds / "c2.nii.gz").unlink()
    with pytest.raises(InputError, match=r"c2\.nii\.gz"):
        evaluate_folder(preds, root, progress=False)
    assert not (preds / "summary.json").exists()


def test_wrong_grid_and_bad_labels_are_input_errors(tiny):
    root, preds = tiny
    save(preds / "c1.nii.gz", np.zeros((5, 5, 5), np.uint8))
    with pytest.raises(InputError, match=r"c1\.nii\.gz.*shape"):
        evaluate_folder(preds, root, case_ids=["c1"], progress=False)
    bad = organ_labels()
    bad[0, 0, 0] = 7
    save(preds / "c1.nii.gz", bad)
    with pytest.raises(InputError, match=r"c1\.nii\.gz.*0/1/2"):
        evaluate_folder(preds, root, case_ids=["c1"], progress=False)
    (preds / "c1.nii.gz").write_bytes(b"\x1f\x8b truncated")
    with pytest.raises(InputError, match=r"c1\.nii\.gz: cannot read prediction"):
        evaluate_folder(preds, root, case_ids=["c1"], progress=False)
    with pytest.raises(InputError, match="cases.csv"):
        evaluate_folder(preds, root, case_ids=["nope"], progress=False)


def test_evaluate_case_organ_postprocess_removes_far_debris():
    ref = with_tumor(organ_labels(), (5, 5, 5), (3, 3, 3))
    pred = ref.copy()
    pred[0:1, 0:1, 0:1] = 1  # organ speck 6-disconnected from the organ: removed
    debris = np.zeros((60, 24, 16), np.uint8)
    debris[:24] = pred
    debris[50:53, 5:8, 5:8] = 2  # tumor 56 mm from the organ: removed (> 30 mm)
    reference = np.zeros_like(debris)
    reference[:24] = ref
    raw = evaluate_case(debris, reference, SPACING)
    cleaned = evaluate_case(debris, reference, SPACING, organ_postprocess=True)
    assert len(raw["false_positives"]) == 1 and raw["organ_dsc"] < 1.0
    assert cleaned["false_positives"] == [] and cleaned["organ_dsc"] == 1.0 and cleaned["tumor_dsc"] == 1.0


def test_evaluate_case_nsd_matches_surface_dice_on_masks():
    ref = with_tumor(organ_labels(), (5, 5, 5), (3, 3, 3))
    pred = with_tumor(organ_labels(), (6, 5, 5), (3, 4, 3))
    pred[2:4] = 0
    result = evaluate_case(pred, ref, (0.8, 0.8, 2.5))
    assert result["organ_nsd"] == surface_dice(pred >= 1, ref >= 1, (0.8, 0.8, 2.5))
    assert result["tumor_nsd"] == surface_dice(pred == 2, ref == 2, (0.8, 0.8, 2.5))
    empty = evaluate_case(np.zeros(SHAPE, np.uint8), np.zeros(SHAPE, np.uint8), SPACING)
    assert (empty["organ_dsc"], empty["organ_nsd"], empty["has_tumor"], empty["pred_has_tumor"]) == (
        1.0, 1.0, False, False)


def test_cross_organ_call_inside_the_target_organ_survives_postprocessing():
    """A liver model on a pancreas CT: its 'organ' is elsewhere (the liver it expects), its correct
    tumor call lies inside the reference (target) organ. The one post-processing keeps the call
    (target organ label), where the predicted-organ filter used before dropped it."""
    ref = with_tumor(organ_labels(), (5, 5, 5), (3, 3, 3))
    pred = np.zeros_like(ref)
    pred[:, :, 14:] = 1  # the model's organ: a slab outside the target organ
    pred[5:8, 5:8, 5:8] = 2  # the correct call, not touching the predicted organ
    cleaned = evaluate_case(pred, ref, SPACING, organ_postprocess=True)
    assert cleaned["tumor_dsc"] == 1.0 and [x["detected"] for x in cleaned["lesions"]] == [True]
    from models.postprocess import postprocess

    assert (postprocess(pred, SPACING) == 2).sum() == 0  # without the target organ: lost


def test_flat_metrics_names_every_final_metric_and_skips_absent_parts():
    """The one builder of the MLflow metric names (the runner logs it): all names of
    docs/contracts.md from a full summary, and a partial summary gives its parts only."""
    from benchmark.metrics import summarize

    record = {"case_id": "a", "age": 55, "sex": "F", "has_tumor": True, "pred_has_tumor": True,
              "organ_dsc": 0.9, "organ_nsd": 0.8, "tumor_dsc": 0.5, "tumor_nsd": 0.4,
              "lesions": [{"volume_mm3": 100.0, "radius_mm": 3.0, "size_bin": "0-5", "detected": True,
                           "centroid_vox": [0, 0, 0]}], "false_positives": []}
    flat = flat_metrics(summarize([record]))
    assert flat["organ_dsc"] == 0.9 and flat["tumor_nsd"] == 0.4 and flat["sens_0_5"] == 1.0
    assert flat["early_sensitivity"] == 1.0 and flat["patient_sensitivity"] == 1.0
    assert flat["tumor_dsc_age_50_59"] == 0.5 and flat["sensitivity_sex_F"] == 1.0
    assert "tumor_dsc_age_lt50" not in flat and "sens_5_10" not in flat  # undefined: left out
    assert flat_metrics({"mean": {"tumor_dsc": 0.3}, "patient": {"specificity": 1.0}}) == {
        "tumor_dsc": 0.3, "patient_specificity": 1.0}
