"""Bad input is found at load, before any run, file or tracking-server contact (issue 29, point 8)."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path

import pytest

from benchmark.errors import InputError
from benchmark.grid import parse_grid
from test_runner_fakes import FAKE_STAGES, fresh_tracking_uri, make_fake_dataset, write_grid

BASE = 'name = "g"\n[datasets]\nliver = "/nonexistent/liver"\n'


@pytest.mark.parametrize("table, field", [
    ('[evaluate]\noverlap = "x"', "evaluate.overlap"),
    ('[evaluate]\ncross_organ = "false"', "evaluate.cross_organ"),  # a string is not false
    ("[evaluate]\noverlap = 1.0", "evaluate.overlap"),
    ("[evaluate]\npreviews = -1", "evaluate.previews"),
    ('[evaluate]\ncross_organ_cases = "test"', "evaluate.cross_organ_cases"),
    ("[slurm]\ntime_min = 0", "slurm.time_min"),
    ('[slurm]\nmem_gb = "lots"', "slurm.mem_gb"),
    ("[slurm]\nmem_gb = 0", "slurm.mem_gb"),
    ("[slurm]\ncpus_per_task = 1.5", "slurm.cpus_per_task"),
    ('[slurm]\nsetup = ["ok", 3]', "slurm.setup"),
    ("[slurm]\npartition = 3", "slurm.partition"),
    ('[optuna]\nn_startup_trials = "2"', "optuna.n_startup_trials"),
    ("[mlflow]\nexperiment = 5", "mlflow.experiment"),
])
def test_every_table_value_is_type_checked_at_load(table, field):
    with pytest.raises(InputError, match=field.replace(".", r"\.")) as err:
        parse_grid(BASE + table + "\n")
    assert "expected" in str(err.value)


def test_checked_values_keep_their_defaults():
    grid = parse_grid(BASE + "[evaluate]\noverlap = 0\n[slurm]\nmem_gb = 0.5\npartition = \"gpu\"\n")
    assert grid.evaluate["overlap"] == 0 and grid.evaluate["cross_organ"] is False
    assert grid.slurm["mem_gb"] == 0.5 and grid.slurm["partition"] == "gpu" and grid.slurm["time_min"] == 720


@pytest.mark.parametrize("top", ['device = "gpu"', 'device = "cuda:x"', "device = 0", "results_dir = 3"])
def test_bad_device_or_results_dir_fails_at_load(top):
    with pytest.raises(InputError, match="device|results_dir"):
        parse_grid(top + "\n" + BASE)


@pytest.mark.parametrize("name", ["../evil", "a/b", "a\\b", "it's", 'say "x"', "..", ".", "tick`"])
def test_unsafe_grid_and_experiment_names_are_refused(name):
    with pytest.raises(InputError, match="not a safe name"):
        parse_grid(f"name = {json.dumps(name)}\n[datasets]\nliver = \"/x\"\n")
    with pytest.raises(InputError, match="mlflow.experiment"):
        parse_grid(BASE + f"[mlflow]\nexperiment = {json.dumps(name)}\n")


def test_unsafe_case_id_is_refused_when_the_dataset_opens(tmp_path):
    from benchmark.data import Dataset

    root = make_fake_dataset(tmp_path / "liver", "liver")
    csv = root / "cases.csv"
    csv.write_text(csv.read_text().replace("liver_001", "../../outside"))
    with pytest.raises(InputError, match=r"cases\.csv: field 'case_id'.*not a safe name"):
        Dataset.open(root)


def test_unsafe_study_name_is_refused_before_anything_is_written(tmp_path):
    from benchmark.tune import tune_cell

    grid = _grid(tmp_path, extra="[optuna.space]\nlr = {low = 1e-4, high = 1e-2, log = true}\n")
    with pytest.raises(InputError, match="--study-name"):
        tune_cell(grid, "organ=liver,backbone=unet,fold=0,regime=real", 1, study_name="../../escape", stages=FAKE_STAGES, progress=False)
    assert not (tmp_path / "escape").exists() and not (tmp_path / "results" / "tune").exists()


def _grid(tmp_path, extra: str = "", **overrides):
    ds = tmp_path / "ds" / "liver"
    if not ds.exists():
        make_fake_dataset(ds, "liver")
    return write_grid(tmp_path / "grid.toml", {"liver": ds}, "exp", tmp_path / "results", extra=extra, **overrides)


def _no_runs(uri: str) -> bool:
    from mlflow import MlflowClient

    return not MlflowClient(uri).search_runs([e.experiment_id for e in MlflowClient(uri).search_experiments()])


def test_fold_missing_from_splits_is_one_error_before_any_run(tmp_path):
    from benchmark.runner import run_grid

    grid, uri = _grid(tmp_path, folds="[0, 1]"), fresh_tracking_uri(tmp_path)
    splits = tmp_path / "ds" / "liver" / "splits.json"
    splits.write_text(json.dumps(json.loads(splits.read_text())[:1]))  # fold 1 gone
    with pytest.raises(InputError, match=r"splits\.json: fold 1 requested"):
        run_grid(grid, tracking_uri=uri, stages=FAKE_STAGES, progress=False)
    assert _no_runs(uri) and not (tmp_path / "results" / "liver").exists()


def test_device_this_machine_lacks_is_one_error_before_any_run(tmp_path):
    from benchmark.runner import run_grid
    from benchmark.stages import check_device

    grid, uri = _grid(tmp_path, device='"cuda:7"'), fresh_tracking_uri(tmp_path)
    with pytest.raises(InputError, match=r"field 'device': 'cuda:7' is not available"):
        run_grid(grid, tracking_uri=uri, stages=dataclasses.replace(FAKE_STAGES, check_device=check_device),
                 progress=False)
    assert _no_runs(uri)


def test_bad_grid_answers_at_once_with_an_unreachable_tracking_server(tmp_path):
    """The grid is checked before the server is tried (an unreachable one took > 120 s to answer)."""
    grid = _grid(tmp_path, extra='[evaluate]\noverlap = "x"\n')
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "benchmark", "run", str(grid), "--tracking-uri", "http://127.0.0.1:9",
                           "--no-progress"], capture_output=True, text=True, timeout=90,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert proc.returncode == 2 and "evaluate.overlap" in proc.stderr, proc.stderr[-2000:]
    assert time.monotonic() - start < 60


def test_busy_cells_make_the_command_fail_and_say_where_they_run(monkeypatch, capsys):
    from benchmark import runner
    from benchmark.cell import Cell
    from benchmark.cell_run import CellOutcome
    from benchmark.cli.run import run_entry

    cell = Cell(organ="liver", backbone="unet", fold=0, regime="real", preset="tiny", seed=0, dataset_fingerprint="f")
    outcomes = [CellOutcome(cell, "finished", "r1", "/res/a"),
                CellOutcome(cell, "busy", None, "/res/b", error="leased by host7 pid 42 (Slurm job 9_1)")]
    monkeypatch.setattr(runner, "run_grid", lambda *a, **k: outcomes)
    monkeypatch.setattr("benchmark.grid.load_grid", lambda path, overrides: path)
    args = Namespace(grid="g.toml", executor="local", max_parallel=None, only=None, dry_run=False, tracking_uri=None,
                     no_progress=True, gpus=None, allow_local_store=False, overrides=[])
    assert run_entry(args) == 1
    out = capsys.readouterr().out
    assert "BUSY liver·unet·real·f0 (/res/b): leased by host7 pid 42 (Slurm job 9_1)" in out
    assert "1 being trained by another process" in out.splitlines()[-1] and "host7 pid 42" in out.splitlines()[-1]
