"""Fake stages (same signatures as the real ones) and a tiny on-disk dataset for runner tests.

The fakes write real files where the runner reads them (checkpoints, predictions) and
compute their numbers from their inputs, so tests can assert hand-computed values.
Environment switches (they reach worker processes too):
  FAKE_KILL_AT_EPOCH=k   the trainer dies like a killed process at epoch k (once per cell:
                         it leaves ``killed_once`` so the rerun gets through);
  FAKE_FAIL_REGIME=hu    the trainer raises ValueError for that regime.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from benchmark.stages import Stages


class SimulatedKill(BaseException):
    """Not an Exception: like SIGKILL, nothing in the runner gets to record it."""


@dataclass(frozen=True)
class FakeConfig:
    backbone: str
    size: str
    seed: int
    epochs: int
    lr: float
    crop_size: tuple = (16, 16, 16)


def fake_make_config(backbone, preset, seed, hyperparameters, *, spacing=None):
    return FakeConfig(backbone=backbone, size=preset, seed=seed, epochs=hyperparameters["epochs"],
                      lr=hyperparameters["lr"], crop_size=tuple(hyperparameters["crop_size"]))


def fake_make_generator(name, organ, **kwargs):
    return {"name": name, "organ": organ, **kwargs}


def val_dsc(lr: float, epoch: int) -> float:
    """Deterministic 'validation DSC': grows with epochs, best near lr = 1e-3."""
    import math

    return round((1 - 1 / (epoch + 2)) / (1 + abs(math.log10(lr) + 3)), 6)


def fake_train(config, train_items, val_items, out_dir, *, generator=None, device="cpu",
               report=None, log_metrics=None, progress=True, cache_dir=None, before_write=None):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    last = out_dir / "last.pt"
    start = json.loads(last.read_text())["epoch"] + 1 if last.is_file() else 0
    (out_dir / "starts.txt").open("a").write(f"{start}\n")
    if generator is not None:
        (out_dir / "generator.json").write_text(json.dumps(generator))
    if os.environ.get("FAKE_FAIL_REGIME") and (generator or {}).get("name", "real") == os.environ["FAKE_FAIL_REGIME"]:
        raise ValueError("fake training diverged")
    for epoch in range(start, config.epochs):
        kill_at = os.environ.get("FAKE_KILL_AT_EPOCH")
        if kill_at is not None and epoch == int(kill_at) and not (out_dir / "killed_once").exists():
            (out_dir / "killed_once").write_text("")
            raise SimulatedKill(f"killed at epoch {epoch}")
        dsc = val_dsc(config.lr, epoch)
        if log_metrics:
            log_metrics({"train_loss": 1 - dsc, "val_tumor_dsc": dsc, "val_organ_dsc": 0.9, "lr": config.lr}, epoch)
        if before_write:
            before_write()
        last.write_text(json.dumps({"epoch": epoch, "n_train": len(train_items)}))
        if report:
            report(epoch, dsc)
    (out_dir / "best.pt").write_text(last.read_text())
    return SimpleNamespace(best_ckpt=out_dir / "best.pt", last_ckpt=last, history=[], resumed_from_epoch=start or None)


def fake_predict(ckpt_path, items, out_dir, *, device="cpu", overlap=0.75, organ_postprocess=True, organ_masks=None,
                 margin_mm=0.0, progress=True):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for item in items:
        path = out_dir / f"{item['case_id']}.nii.gz"
        path.write_text(Path(item["label"]).read_text())  # "perfect" prediction
        paths.append(path)
    return paths


def fake_evaluate(pred_dir, dataset, case_ids=None, out=None, progress=True, min_lesion_mm3=8.0,
                  patient_threshold_mm3=70.0):
    """Summary in the contract's shape; sensitivity = n cases / (n cases + 1)."""
    n = len(case_ids)
    files = sorted(p.name for p in Path(pred_dir).glob("*.nii.gz"))
    sens = n / (n + 1)
    group = {"n": n, "tumor_dsc": 0.5, "patient_sensitivity": sens, "patient_specificity": 1.0}
    return {
        "metric_per_case": [{"case_id": f} for f in files],
        "mean": {"organ_dsc": 0.9, "organ_nsd": 0.8, "tumor_dsc": 0.5, "tumor_nsd": 0.4},
        "size_bins": {k: {"n": n, "detected": n, "sensitivity": 1.0} for k in ("0-5", "5-10", "10-15", "15-20", "20+")},
        "early_sensitivity": sens, "n_early": n,
        "patient": {"sensitivity": sens, "specificity": None, "tp": n, "fn": 1, "tn": 0, "fp": 0},
        "demographics": {"age": {"<50": group, "50-59": group, "60-69": group, "70+": group},
                         "sex": {"M": group, "F": group}},
    }


def fake_previews(dataset, case_ids, pred_dir, out_dir, n=3):
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{case_ids[0]}.png"
    path.write_bytes(b"\x89PNG fake")
    return [path]


FAKE_STAGES = Stages(make_config=fake_make_config, make_generator=fake_make_generator, train=fake_train,
                     predict=fake_predict, evaluate=fake_evaluate, previews=fake_previews)


def make_fake_dataset(root: Path, organ: str, n_cases: int = 10) -> Path:
    """Canonical layout with placeholder image files (the fakes never decode them)."""
    root.mkdir(parents=True)
    ids = [f"{organ}_{i:03d}" for i in range(n_cases)]
    (root / "dataset.json").write_text(json.dumps({
        "name": f"fake-{organ}", "organ": organ, "labels": {"background": 0, "organ": 1, "tumor": 2},
        "spacing": [2.0, 2.0, 2.0], "source_format": "phantom", "num_cases": n_cases}))
    rows = ["case_id,age,sex,has_tumor,role,source"]
    rows += [f"{c},{40 + 5 * i},{'MF'[i % 2]},{int(i % 3 != 0)},{'healthy' if i % 3 == 0 else 'labeled'},phantom"
             for i, c in enumerate(ids)]
    (root / "cases.csv").write_text("\n".join(rows) + "\n")
    folds = [{"val": ids[k::5], "train": [c for c in ids if c not in ids[k::5]]} for k in range(5)]
    (root / "splits.json").write_text(json.dumps(folds))
    for c in ids:
        (root / "cases" / c).mkdir(parents=True)
        (root / "cases" / c / "ct.nii.gz").write_text(f"ct {c}")
        (root / "cases" / c / "labels.nii.gz").write_text(f"labels {c}")
    return root


def write_grid(path: Path, datasets: dict, name: str, results: Path, extra: str = "", **overrides) -> Path:
    """A small grid TOML; ``overrides`` replace top-level keys (TOML literal strings),
    ``extra`` is appended (more tables)."""
    top = {"name": json.dumps(name), "preset": '"tiny"', "seed": "0", "results_dir": json.dumps(str(results)),
           "organs": '["liver"]', "backbones": '["unet"]', "folds": "[0]", "regimes": '["real", "hu"]'}
    top.update(overrides)
    lines = [f"{k} = {v}" for k, v in top.items()]
    lines += ["", "[datasets]"] + [f"{o} = {json.dumps(str(p))}" for o, p in datasets.items()]
    lines += ["", "[train]", "epochs = 3", "lr = 0.001", "crop_size = [16, 16, 16]"]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


# --- MLflow store for tests -----------------------------------------------------------------
def fresh_tracking_uri(tmp_path: Path) -> str:
    """A sqlite store of its own for one test, copied from a migrated empty template.

    Creating MLflow's tables takes 5-20 s; the template is made once per MLflow version in
    the temp folder (atomically renamed into place) and copied in milliseconds.
    """
    import os
    import shutil
    import tempfile

    import mlflow

    template = Path(tempfile.gettempdir()) / f"tumorbench-mlflow-template-{mlflow.__version__}.db"
    if not template.is_file():
        folder = Path(tempfile.mkdtemp(prefix="tumorbench-mlflow-template-"))
        mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}").search_experiments()
        os.replace(folder / "mlflow.db", template)
        shutil.rmtree(folder, ignore_errors=True)
    store = tmp_path / "mlruns"
    store.mkdir(exist_ok=True)
    shutil.copy(template, store / "mlflow.db")
    return f"sqlite:///{store / 'mlflow.db'}"


def cell_runs(uri: str, experiment: str, kind: str = "cell"):
    """DataFrame of the experiment's runs of ``kind`` (mlflow.search_runs)."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    return mlflow.search_runs(experiment_names=[experiment], filter_string=f"tags.`tumorbench.kind` = '{kind}'")
