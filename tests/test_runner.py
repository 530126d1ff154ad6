"""Runner plumbing with fake stages: MLflow contents, skip, resume, failure isolation."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pandas as pd
import pytest

from test_runner_fakes import (FAKE_STAGES, SimulatedKill, cell_runs, fresh_tracking_uri,
                               make_fake_dataset, val_dsc, write_grid)
from benchmark.runner import run_grid

EPOCHS = 3  # write_grid's [train] epochs


@pytest.fixture
def setup(tmp_path):
    datasets = {"liver": make_fake_dataset(tmp_path / "ds" / "liver", "liver"),
                "pancreas": make_fake_dataset(tmp_path / "ds" / "pancreas", "pancreas")}
    grid = write_grid(tmp_path / "grid.toml", datasets, "exp", tmp_path / "results", folds="[0, 1]",
                      extra="[evaluate]\ncross_organ = true\n")
    return grid, fresh_tracking_uri(tmp_path), tmp_path


def _run(grid, uri, **kw):
    return run_grid(grid, tracking_uri=uri, stages=FAKE_STAGES, progress=False, **kw)


def test_grid_logs_contract_params_tags_metrics_and_files(setup):
    grid, uri, tmp = setup
    outcomes = _run(grid, uri)
    assert [o.status for o in outcomes] == ["finished"] * 4  # liver x unet x 2 folds x 2 regimes
    runs = cell_runs(uri, "exp")
    assert len(runs) == 4 and set(runs["status"]) == {"FINISHED"}
    assert set(runs["tags.mlflow.runName"]) == {"liver·unet·real·f0", "liver·unet·hu·f0",
                                                "liver·unet·real·f1", "liver·unet·hu·f1"}
    parent = cell_runs(uri, "exp", kind="grid")
    assert len(parent) == 1 and set(runs["tags.mlflow.parentRunId"]) == {parent["run_id"][0]}
    row = runs[runs["tags.mlflow.runName"] == "liver·unet·hu·f1"].iloc[0]
    results = Path(row["tags.tumorbench.results_dir"])
    assert results.parent == tmp / "results" / "liver" / "unet" / "hu"
    assert results.name == f"fold_1__{row['tags.tumorbench.cell_hash']}"
    for param, value in {"organ": "liver", "backbone": "unet", "fold": "1", "regime": "hu", "preset": "tiny"}.items():
        assert row[f"params.{param}"] == value
    for tag, value in {"dataset_dir": str(tmp / "ds" / "liver"), "device": "cpu"}.items():
        assert row[f"tags.tumorbench.{tag}"] == value
    assert row["tags.mlflow.note.content"].startswith("unet (tiny) trained on liver fold 1")
    assert row["params.generator.name"] == "hu" and row["params.lr"] == "0.001"
    assert row["params.crop_size"] == "[16, 16, 16]" and row["params.fold"] == "1"
    # 10 cases, fold 1 holds out 2 per organ: fake sensitivity = 2 / 3
    assert row["metrics.early_sensitivity"] == pytest.approx(2 / 3)
    real = runs[runs["tags.mlflow.runName"] == "liver·unet·real·f1"].iloc[0]  # Table 3 real row: evaluated
    assert real["metrics.xorgan_early_sensitivity_pancreas"] == pytest.approx(2 / 3)  # on the other organ
    assert pd.isna(row.get("metrics.xorgan_early_sensitivity_pancreas"))  # synthetic: own organ only
    assert row["metrics.tumor_dsc_sex_F"] == 0.5 and row["metrics.sens_20_inf"] == 1.0
    assert row["metrics.best_val_tumor_dsc"] == pytest.approx(val_dsc(1e-3, EPOCHS - 1))
    assert "metrics.patient_specificity" not in runs or runs["metrics.patient_specificity"].isna().all()  # null
    for name in ("summary.json", "cell.json", "train_config.json", "cases_used.json", "DONE"):
        assert (results / name).is_file(), name
    real_results = Path(real["tags.tumorbench.results_dir"])
    assert (real_results / "cross_organ" / "pancreas" / "summary.json").is_file()
    assert json.loads((results / "cell.json").read_text())["regime"] == "hu"
    assert json.loads((results / "train" / "generator.json").read_text())["name"] == "hu"
    assert sorted(p.name for p in (real_results / "predictions" / "pancreas").glob("*.nii.gz")) == \
        ["pancreas_001.nii.gz", "pancreas_006.nii.gz"]

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    history = client.get_metric_history(row["run_id"], "val_tumor_dsc")
    assert [m.step for m in history] == list(range(EPOCHS))
    artifacts = {a.path for a in client.list_artifacts(row["run_id"])}
    assert {"summary.json", "cell.json", "train_config.json", "cases_used.json", "previews"} <= artifacts
    assert "grid.toml" in {a.path for a in client.list_artifacts(parent["run_id"][0])}


def test_rerun_skips_finished_cells_without_new_runs(setup):
    grid, uri, tmp = setup
    _run(grid, uri, only="fold=0")
    first = cell_runs(uri, "exp")
    again = _run(grid, uri)
    assert [o.status for o in again].count("skipped") == 2
    runs = cell_runs(uri, "exp")
    assert len(runs) == 4  # 2 from the first call + 2 new (fold 1), none duplicated
    assert set(first["run_id"]) <= set(runs["run_id"])
    starts = (tmp / "results").glob("liver/unet/*/fold_0__*/train/starts.txt")
    assert all(p.read_text() == "0\n" for p in starts)  # fold 0 was not trained twice


def test_killed_cell_resumes_in_the_same_run(setup, monkeypatch):
    grid, uri, tmp = setup
    monkeypatch.setenv("FAKE_KILL_AT_EPOCH", "1")
    with pytest.raises(SimulatedKill):
        _run(grid, uri, only="regime=hu,fold=0")
    runs = cell_runs(uri, "exp")
    assert list(runs["status"]) == ["RUNNING"]  # what a SIGKILL leaves behind
    killed_id = runs["run_id"][0]
    _run(grid, uri, only="regime=hu,fold=0")
    runs = cell_runs(uri, "exp")
    assert list(runs["run_id"]) == [killed_id] and list(runs["status"]) == ["FINISHED"]
    train = next((tmp / "results").glob("liver/unet/hu/fold_0__*/train"))
    assert train.joinpath("starts.txt").read_text() == "0\n1\n"  # resumed after epoch 0's checkpoint
    from mlflow import MlflowClient

    steps = [m.step for m in MlflowClient(tracking_uri=uri).get_metric_history(killed_id, "val_tumor_dsc")]
    assert steps == [0, 1, 2] and runs["tags.tumorbench.resumed"][0] == "1"


def test_failing_cell_is_recorded_and_others_finish(setup, monkeypatch):
    grid, uri, tmp = setup
    monkeypatch.setenv("FAKE_FAIL_REGIME", "hu")
    outcomes = _run(grid, uri)
    assert sorted(o.status for o in outcomes) == ["failed", "failed", "finished", "finished"]
    runs = cell_runs(uri, "exp")
    failed = runs[runs["status"] == "FAILED"]
    assert set(failed["params.regime"]) == {"hu"} and len(failed) == 2
    assert set(failed["tags.tumorbench.error"]) == {"ValueError: fake training diverged"}
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    error_txt = Path(client.download_artifacts(failed["run_id"].iloc[0], "error.txt", str(tmp))).read_text()
    assert "Traceback" in error_txt and "fake training diverged" in error_txt
    assert cell_runs(uri, "exp", kind="grid")["status"][0] == "FAILED"
    monkeypatch.delenv("FAKE_FAIL_REGIME")
    _run(grid, uri)  # the fix: failed cells are retried in their own runs
    runs = cell_runs(uri, "exp")
    assert len(runs) == 4 and set(runs["status"]) == {"FINISHED"}
    assert runs["tags.tumorbench.error"].isna().all() if "tags.tumorbench.error" in runs else True


def test_dry_run_prints_table_and_touches_nothing(setup, capsys):
    grid, uri, tmp = setup
    assert _run(grid, uri, dry_run=True, only="regime=real") == []
    out = capsys.readouterr().out
    assert out.count("liver") >= 2 and "2 cells" in out and " hu " not in out
    assert not (tmp / "results").exists() and cell_runs(uri, "exp").empty


def test_submitit_local_executor_runs_a_cell(setup, monkeypatch):
    grid, uri, tmp = setup
    repo = Path(__file__).resolve().parents[1]
    # the job process unpickles the fakes by module name: make tests/ and the repo importable
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(repo), str(repo / "tests")]))
    outcomes = _run(grid, uri, executor="submitit-local", only="fold=0,regime=hu")
    assert [o.status for o in outcomes] == ["finished"], [o.error for o in outcomes]
    runs = cell_runs(uri, "exp")
    assert len(runs) == 1 and runs["status"][0] == "FINISHED"
    assert Path(runs["tags.tumorbench.results_dir"][0], "DONE").is_file()
    assert list((tmp / "results" / ".submitit").glob("*_result.pkl"))  # it ran as a submitit job


def test_cli_dry_run_and_bad_grid(setup, capsys, tmp_path):
    from benchmark.cli import main

    grid, uri, tmp = setup
    assert main(["run", str(grid), "--dry-run", "--only", "fold=1"]) == 0
    assert "2 cells" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nregimes = ["gan"]\n[datasets]\nliver = "/nowhere"\n')
    assert main(["run", str(bad), "--dry-run"]) == 2
    assert "field 'regimes' has 'gan'" in capsys.readouterr().err
    assert main(["tune", str(grid), "--cell", "organ=liver"]) == 2
    assert "--cell" in capsys.readouterr().err


def test_previews_written_for_predicted_cases(tmp_path):
    import nibabel as nib
    import numpy as np

    from benchmark.data import Dataset
    from benchmark.previews import render_previews

    root = make_fake_dataset(tmp_path / "ds", "liver", n_cases=5)
    labels = np.zeros((20, 20, 10), np.uint8)
    labels[5:15, 5:15, 2:8] = 1
    labels[8:11, 8:11, 6] = 2  # the tumor is on slice 6 only
    for case in ("liver_000", "liver_001"):
        nib.save(nib.Nifti1Image(np.full(labels.shape, 40, np.int16), np.eye(4)), root / "cases" / case / "ct.nii.gz")
        nib.save(nib.Nifti1Image(labels, np.eye(4)), root / "cases" / case / "labels.nii.gz")
    (tmp_path / "pred").mkdir()
    nib.save(nib.Nifti1Image(labels, np.eye(4)), tmp_path / "pred" / "liver_000.nii.gz")
    written = render_previews(Dataset.open(root), ["liver_000", "liver_001"], tmp_path / "pred", tmp_path / "png", n=3)
    assert [p.name for p in written] == ["liver_000.png"]  # liver_001 has no prediction
    assert written[0].read_bytes()[:4] == b"\x89PNG"


def test_slurm_parameters_reach_the_sbatch_script(tmp_path, monkeypatch):
    """No cluster here: pretend srun exists and read the sbatch script submitit would submit."""
    import submitit

    from benchmark.executors import submitit_executor
    from benchmark.grid import parse_grid

    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", staticmethod(lambda: 1))
    grid = parse_grid('name = "g"\n[datasets]\nliver = "/d"\n[slurm]\npartition = "gpu"\ngpus_per_node = 2\n'
                      'time_min = 90\nmem_gb = 32\narray_parallelism = 3\naccount = "lab"\n')
    ex = submitit_executor(tmp_path, grid.slurm, cluster="slurm")
    script = ex._executor._make_submission_file_text("python -m x", "uid")
    for line in ("--partition=gpu", "--gpus-per-node=2", "--time=90", "--mem=32GB", "--account=lab",
                 "--cpus-per-task=8", "--job-name=tumorbench"):
        assert f"#SBATCH {line}" in script, line
    assert ex._executor.parameters["array_parallelism"] == 3


def test_difftumor_auto_checkpoints_are_trained_per_organ_and_fold(setup, monkeypatch):
    """Each fold's cells get generators (autoencoder included) trained on that fold only."""
    import sys
    import types

    grid, uri, tmp = setup
    calls = []

    def fake_train_tiny_generators(dataset_dir, out_dir, organ=None, device="cpu", *, fold=None, progress=True,
                                   autoencoder=None):
        calls.append((Path(dataset_dir).name, organ, fold, autoencoder))
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        return Path(out_dir)

    monkeypatch.setitem(sys.modules, "benchmark.generators", types.SimpleNamespace(
        train_tiny_generators=fake_train_tiny_generators))
    text = grid.read_text().replace('regimes = ["real", "hu"]', 'regimes = ["difftumor"]')
    grid.write_text(text + '\n[generators.difftumor]\ncheckpoints = "auto"\n')
    outcomes = _run(grid, uri)  # two folds, one organ
    assert [o.status for o in outcomes] == ["finished", "finished"]
    assert calls == [("liver", "liver", 0, None), ("liver", "liver", 1, None)]  # own autoencoder per fold
    for fold in (0, 1):
        folder = next((tmp / "results").glob(f"liver/unet/difftumor/fold_{fold}__*"))
        used = json.loads((folder / "train" / "generator.json").read_text())
        assert used["name"] == "difftumor"
        assert used["checkpoint"] == str(tmp / "results" / "generators" / "liver" / f"fold_{fold}")
    assert cell_runs(uri, "exp")["params.generator.checkpoint"].tolist() == ["auto", "auto"]


def test_bad_train_value_fails_before_any_run(setup):
    from benchmark.errors import InputError
    from benchmark.stages import make_train_config

    grid, uri, tmp = setup
    grid.write_text(grid.read_text().replace("[train]\n", "[train]\nval_overlap = 1.5\n"))
    stages = dataclasses.replace(FAKE_STAGES, make_config=make_train_config)  # the real validation
    with pytest.raises(InputError, match=r"grid \[train\]: TrainConfig.val_overlap=1.5: expected"):
        run_grid(grid, tracking_uri=uri, stages=stages, progress=False)
    assert not (tmp / "results").exists() or not any((tmp / "results").rglob("cell.json"))


def test_broken_dataset_is_reported_before_any_run(setup):
    from benchmark.data.check import ensure_valid_cached
    from benchmark.errors import InputError

    grid, uri, tmp = setup  # the fake datasets' images are not NIfTI files: the check must say so
    stages = dataclasses.replace(FAKE_STAGES, check_dataset=ensure_valid_cached)
    with pytest.raises(InputError, match=r"(?s)dataset problem.*ct\.nii\.gz: cannot read CT image"):
        run_grid(grid, tracking_uri=uri, stages=stages, progress=False)
    assert not any((tmp / "results").rglob("cell.json")) if (tmp / "results").exists() else True


def test_local_pool_starts_the_longest_cells_first():
    """LPT order: more iterations first, then cells with a generator (on-the-fly synthesis), those
    sampling a trained model (checkpoint) first; stable."""
    from types import SimpleNamespace

    from benchmark.executors import longest_first

    def task(iterations, generator=()):
        hp = {"epochs": iterations // 10, "iters_per_epoch": 10}
        return SimpleNamespace(cell=SimpleNamespace(hp=lambda: hp, generator=generator))

    synth = (("name", "hu"),)
    model = (("checkpoint", "auto"), ("name", "difftumor"))  # a trained sampler: the costliest synthesis
    tasks = [task(100), task(100, synth), task(200), task(100, synth), task(50, synth), task(100, model)]
    assert longest_first(tasks, range(6)) == [2, 5, 1, 3, 0, 4]
    assert longest_first(tasks, [0, 4]) == [0, 4]  # only the cells still to run
