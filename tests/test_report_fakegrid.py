"""A tiny, schema-faithful finished grid for the report tests (no tests in this module).

2 organs (liver, pancreas) x 1 backbone (unet) x 2 regimes (real, difftumor) x 2 folds, logged to
a temporary sqlite MLflow store with the tags/params/metrics/artifacts of docs/contracts.md, plus a
dataset folder with NIfTI CT/labels and prediction NIfTIs. pancreas·unet·difftumor·f1 is a FAILED
run, so the report must show it as missing. Every finished run is also evaluated on the other organ
(``cross_organ/<organ>/summary.json``); pancreas·unet·real is trained with a second seed (1), and a
cross-organ source cell (target pancreas, ``synth_source = liver``, difftumor) exists for both folds.
"""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
from mlflow.entities import Metric, Param

SHAPE = (32, 28, 16)
SPACING = 2.0
ORGANS = ("liver", "pancreas")
REGIMES = ("real", "difftumor")
FOLDS = (0, 1)
CASES = {0: ["c0", "c1", "c2"], 1: ["c3", "c4", "c5"]}  # validation cases per fold
HEALTHY = {"c2", "c5"}
FAILED = ("pancreas", "unet", "difftumor", 1)
GRID_TOML = 'name = "fake_grid"\n[grid]\norgans = ["liver", "pancreas"]\nbackbones = ["unet"]\n' \
            'regimes = ["real", "difftumor"]\nfolds = [0, 1]\n'


def _ball(center, radius) -> np.ndarray:
    grid = np.indices(SHAPE).transpose(1, 2, 3, 0)
    return np.linalg.norm(grid - np.array(center), axis=-1) <= radius


def _affine() -> np.ndarray:
    return np.diag([SPACING, SPACING, SPACING, 1.0])


def _save(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, _affine()), str(path))


def make_dataset(root: Path, organ: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Write the canonical dataset layout; returns case_id -> label volume."""
    labels = {}
    rows = ["case_id,age,sex,has_tumor,role,source"]
    for k, case_id in enumerate(c for f in FOLDS for c in CASES[f]):
        lab = _ball((16, 14, 8), 9).astype(np.uint8)
        if case_id not in HEALTHY:
            lab[_ball((12 + k, 12, 8), 2 + k % 3)] = 2
        ct = rng.normal(60, 10, SHAPE).astype(np.float32) - 900 * (lab == 0) + 40 * (lab == 2)
        _save(root / "cases" / case_id / "ct.nii.gz", ct)
        _save(root / "cases" / case_id / "labels.nii.gz", lab)
        labels[case_id] = lab
        rows.append(f"{case_id},{45 + 8 * k},{'MF'[k % 2]},{int(case_id not in HEALTHY)},"
                    f"{'healthy' if case_id in HEALTHY else 'labeled'},phantom")
    (root / "dataset.json").write_text(json.dumps({"name": f"fake_{organ}", "organ": organ, "labels":
                                       {"background": 0, "organ": 1, "tumor": 2}, "spacing": [SPACING] * 3,
                                       "source_format": "phantom", "num_cases": len(labels)}))
    (root / "cases.csv").write_text("\n".join(rows) + "\n")
    (root / "splits.json").write_text(json.dumps([{"train": CASES[1 - f], "val": CASES[f]} for f in FOLDS]))
    return labels


EXTRA_SEED = ("pancreas", "unet", "real")  # these cells also run with seed 1
SOURCE = ("pancreas", "unet", "difftumor", "liver")  # target organ, backbone, regime, source organ


def fake_prediction(label: np.ndarray, regime: str, case_index: int, variant: str = "") -> np.ndarray:
    """Real-tumor models miss every other tumor; DiffTumor models find them (shifted by one voxel).

    Variants: ``seed1`` finds every tumor; ``source`` (liver generator -> pancreas) finds tumors of
    odd cases only; ``cross`` (a model on another organ's CT): real finds case 1's tumor only,
    synthetic finds every tumor (not a Table 3 experiment, so Table 3 must ignore it).
    """
    pred = (label > 0).astype(np.uint8)
    misses = {"": regime == "real" and case_index % 2 == 0, "seed1": False, "source": case_index % 2 == 0,
              "cross": regime == "real" and case_index != 1}[variant]
    if misses:
        return pred  # tumor missed
    pred[np.roll(label == 2, 1, axis=0)] = 2
    if regime == "real" and case_index == 5:
        pred[_ball((20, 18, 8), 1.5)] = 2  # a false positive on a healthy case
    return pred


def case_entry(case_id, label, pred, age, sex) -> dict:
    gt, pt = label == 2, pred == 2
    has = bool(gt.any())
    dsc = float(2 * (gt & pt).sum() / (gt.sum() + pt.sum())) if has else None
    volume = float(gt.sum() * SPACING ** 3)
    radius = float((3 * volume / (4 * np.pi)) ** (1 / 3))
    lesions = [{"volume_mm3": volume, "radius_mm": radius, "size_bin": "0-5" if radius < 5 else "5-10",
                "detected": bool((gt & pt).any()), "centroid_vox": [float(v) for v in np.argwhere(gt).mean(0)]}] if has else []
    fps = [] if has or not pt.any() else [{"volume_mm3": float(pt.sum() * 8), "radius_mm": 2.0, "centroid_vox": [20, 18, 8]}]
    return {"case_id": case_id, "age": age, "sex": sex, "has_tumor": has, "pred_has_tumor": bool(pt.any()),
            "organ_dsc": 0.9, "organ_nsd": 0.85, "tumor_dsc": dsc, "tumor_nsd": None if dsc is None else dsc * 0.9,
            "lesions": lesions, "false_positives": fps}


def make_summary(per_case: list[dict]) -> dict:
    tumor = [c for c in per_case if c["has_tumor"]]
    lesions = [les for c in per_case for les in c["lesions"]]
    bins = {}
    for name in ("0-5", "5-10", "10-15", "15-20", "20+"):
        sel = [les for les in lesions if les["size_bin"] == name]
        det = sum(les["detected"] for les in sel)
        bins[name] = {"n": len(sel), "detected": det, "sensitivity": det / len(sel) if sel else None}
    tp = sum(c["pred_has_tumor"] for c in tumor)
    healthy = [c for c in per_case if not c["has_tumor"]]
    tn = sum(not c["pred_has_tumor"] for c in healthy)
    sex = {s: {"n": sum(c["sex"] == s for c in per_case), "tumor_dsc": None, "patient_sensitivity": None,
               "patient_specificity": None} for s in "MF"}
    return {"metric_per_case": per_case,
            "mean": {"organ_dsc": 0.9, "organ_nsd": 0.85, "tumor_dsc": float(np.mean([c["tumor_dsc"] for c in tumor])),
                     "tumor_nsd": float(np.mean([c["tumor_nsd"] for c in tumor]))},
            "size_bins": bins, "early_sensitivity": sum(les["detected"] for les in lesions) / len(lesions),
            "n_early": len(lesions),
            "patient": {"sensitivity": tp / len(tumor), "specificity": tn / len(healthy) if healthy else None,
                        "tp": tp, "fn": len(tumor) - tp, "tn": tn, "fp": len(healthy) - tn},
            "demographics": {"age": {}, "sex": sex}}


def log_cell(mlflow, client, exp_id, parent_id, key, summary, results_dir: Path, dataset_dir: Path, failed=False,
             seed=0, source=None, cross=None):
    organ, backbone, regime, fold = key
    cross = cross or {}
    tags = {"tumorbench.kind": "cell", "organ": organ, "backbone": backbone, "fold": str(fold), "regime": regime,
            "preset": "tiny", "cell_hash": f"h{abs(hash(key)) % 10**6}", "results_dir": str(results_dir),
            "dataset_dir": str(dataset_dir), "git_commit": "abc123def4567890", "device": "cpu",
            "mlflow.parentRunId": parent_id}
    run = client.create_run(exp_id, run_name=f"{organ}·{backbone}·{regime}·f{fold}", tags=tags)
    rid = run.info.run_id
    params = {"organ": organ, "backbone": backbone, "regime": regime, "fold": fold, "epochs": 3, "seed": seed}
    params = [Param(k, str(v)) for k, v in {**params, **({"synth_source": source} if source else {})}.items()]
    history = []
    for epoch in range(3):
        history.append(Metric("train_loss", 1.0 / (epoch + 1) + 0.1 * (regime == "real"), 0, epoch))
        history.append(Metric("val_tumor_dsc", summary["mean"]["tumor_dsc"] * (epoch + 1) / 3, 0, epoch))
    client.log_batch(rid, metrics=history, params=params)
    if failed:
        client.set_terminated(rid, "FAILED")
        return rid
    bins = summary["size_bins"]
    metrics = {"tumor_dsc": summary["mean"]["tumor_dsc"], "tumor_nsd": summary["mean"]["tumor_nsd"],
               "organ_dsc": 0.9, "organ_nsd": 0.85, "patient_sensitivity": summary["patient"]["sensitivity"],
               "early_sensitivity": summary["early_sensitivity"],
               "sens_0_5": bins["0-5"]["sensitivity"] or 0.0, "sens_5_10": bins["5-10"]["sensitivity"] or 0.0,
               "tumor_dsc_sex_M": summary["mean"]["tumor_dsc"] * 0.95, "sensitivity_sex_F": 0.5 + 0.25 * fold,
               "tumor_dsc_age_lt50": 0.4 + 0.1 * fold}
    if summary["patient"]["specificity"] is not None:
        metrics["patient_specificity"] = summary["patient"]["specificity"]
    for target in ORGANS:  # cross-organ early sensitivity (own organ = own value)
        metrics[f"xorgan_early_sensitivity_{target}"] = (cross.get(target) or summary)["early_sensitivity"]
    client.log_batch(rid, metrics=[Metric(k, float(v), 0, 0) for k, v in metrics.items()])
    folder = results_dir / "artifacts_src"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(summary))
    client.log_artifact(rid, str(folder / "summary.json"))
    for target, cross_summary in cross.items():
        (folder / target).mkdir(exist_ok=True)
        (folder / target / "summary.json").write_text(json.dumps(cross_summary))
        client.log_artifact(rid, str(folder / target / "summary.json"), f"cross_organ/{target}")
    client.set_terminated(rid, "FINISHED")
    return rid


def build_fake_grid(tmp: Path, seed: int = 0) -> dict:
    """Create the store + files; returns {"uri", "experiment", "experiment_id", "run_ids", "root"}."""
    import mlflow
    from mlflow.tracking import MlflowClient

    rng = np.random.default_rng(seed)
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment("fake_grid", artifact_location=(tmp / "artifacts").as_uri())
    parent = client.create_run(exp_id, run_name="grid fake_grid", tags={"tumorbench.kind": "grid", "git_commit": "abc123def4567890"})
    (tmp / "grid.toml").write_text(GRID_TOML)
    client.log_artifact(parent.info.run_id, str(tmp / "grid.toml"))
    labels = {organ: make_dataset(tmp / "data" / organ, organ, rng) for organ in ORGANS}
    runs = [((o, "unet", r, f), 0, None) for o in ORGANS for r in REGIMES for f in FOLDS]
    runs += [((*EXTRA_SEED, f), 1, None) for f in FOLDS] + [((*SOURCE[:3], f), 0, SOURCE[3]) for f in FOLDS]
    run_ids = {}
    for key, seed, source in runs:
        organ, _, regime, fold = key
        variant = "seed1" if seed else "source" if source else ""
        results_dir = tmp / "results" / organ / "unet" / regime / f"fold_{fold}__s{seed}{source or ''}"
        per_case, cross = [], {}
        for case_id in CASES[fold]:
            index = int(case_id[1:])
            pred = fake_prediction(labels[organ][case_id], regime, index, variant)
            _save(results_dir / "predictions" / organ / f"{case_id}.nii.gz", pred)
            per_case.append(case_entry(case_id, labels[organ][case_id], pred, 45 + 8 * index, "MF"[index % 2]))
        for target in ORGANS if not (seed or source) else ():
            if target != organ:
                cross[target] = make_summary([case_entry(c, labels[target][c], fake_prediction(
                    labels[target][c], regime, int(c[1:]), "cross"), 45 + 8 * int(c[1:]), "MF"[int(c[1:]) % 2])
                    for c in CASES[fold]])
        name = key if not (seed or source) else (*key, seed, source or organ)
        run_ids[name] = log_cell(mlflow, client, exp_id, parent.info.run_id, key, make_summary(per_case),
                                 results_dir, tmp / "data" / organ, failed=key == FAILED and not (seed or source),
                                 seed=seed, source=source, cross=cross)
    client.set_terminated(parent.info.run_id, "FINISHED")
    log_realism_run(client, tmp, exp_id)
    return {"uri": uri, "experiment": "fake_grid", "experiment_id": exp_id, "run_ids": run_ids, "root": tmp,
            "parent_id": parent.info.run_id}


def log_realism_run(client, tmp: Path, exp_id: str) -> str:
    """What `tumorbench radiomics --experiment fake_grid` logs: a run tagged tumorbench.kind=realism
    in the grid's experiment (the report ignores realism runs of other experiments)."""
    run = client.create_run(exp_id, run_name="realism", tags={"tumorbench.kind": "realism"})
    folder = tmp / "realism_src"
    folder.mkdir()
    (folder / "realism_scores.csv").write_text("generator,organ,realism_score\ndifftumor,liver,0.8765432\n")
    client.log_artifact(run.info.run_id, str(folder / "realism_scores.csv"))
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id
