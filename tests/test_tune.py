"""Optuna tuning over the cell runner (fake stages): pruning, nested runs, resume after a kill."""
from __future__ import annotations

import time

import pytest

from test_runner_fakes import (FAKE_STAGES, SimulatedKill, cell_runs, fresh_tracking_uri,
                               make_fake_dataset, val_dsc, write_grid)
from benchmark.tune import tune_cell

CELL = "organ=liver,backbone=unet,regime=hu,fold=0"
OPTUNA = """
[optuna]
pruner = "median"
n_startup_trials = 1
n_warmup_steps = 0

[optuna.space]
lr = {low = 1e-4, high = 1e-1, log = true}
"generator.size_probs" = {choices = [[0.5, 0.5, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]]}
"""


@pytest.fixture
def grid(tmp_path):
    ds = {"liver": make_fake_dataset(tmp_path / "ds" / "liver", "liver")}
    return write_grid(tmp_path / "grid.toml", ds, "tuning", tmp_path / "results", extra=OPTUNA)


def _tune(grid, tmp_path, n, **kw):
    return tune_cell(grid, CELL, n, storage=f"sqlite:///{tmp_path / 'optuna.db'}", study_name="s",
                     tracking_uri=fresh_tracking_uri(tmp_path) if not (tmp_path / "mlruns").exists()
                     else f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}",
                     stages=FAKE_STAGES, progress=False, **kw)


def test_three_trials_prune_and_log_nested_runs(grid, tmp_path):
    import optuna

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'optuna.db'}", study_name="s", direction="maximize")
    # the first is the best possible, the second worse at every epoch, the third ties the first
    for lr, probs in ((1e-3, "[0.5, 0.5, 0.0, 0.0]"), (1e-1, "[0.5, 0.5, 0.0, 0.0]"),
                      (1e-3, "[0.25, 0.25, 0.25, 0.25]")):
        study.enqueue_trial({"lr": lr, "generator.size_probs": probs})
    result = _tune(grid, tmp_path, 3)
    states = [t.state.name for t in study.get_trials()]
    assert states == ["COMPLETE", "PRUNED", "COMPLETE"]
    assert result.best_value == pytest.approx(val_dsc(1e-3, 2)) and result.best_params["lr"] == 1e-3
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    trials, parent = cell_runs(uri, "tuning", "trial"), cell_runs(uri, "tuning", "study")
    assert len(parent) == 1 and len(trials) == 3
    assert set(trials["tags.mlflow.parentRunId"]) == {parent["run_id"][0]}
    assert sorted(trials["status"]) == ["FINISHED", "FINISHED", "KILLED"]
    assert set(trials[trials["status"] == "KILLED"]["tags.tumorbench.stopped"]) == {"TrialPruned"}
    snippet = (result.folder / "best_params.toml").read_text()
    assert ('[tuned."organ=liver,backbone=unet,regime=hu,fold=0"]\nlr = 0.001\n'
            '"generator.size_probs" = [0.5, 0.5, 0.0, 0.0]\n') in snippet
    assert (result.folder / "history.png").is_file() and (result.folder / "trials.csv").is_file()
    # nothing to do when the study already holds its trials: no new runs
    _tune(grid, tmp_path, 3)
    assert len(cell_runs(uri, "tuning", "trial")) == 3


def test_killed_trial_is_requeued_and_resumes_its_run(grid, tmp_path, monkeypatch):
    import optuna

    monkeypatch.setenv("FAKE_KILL_AT_EPOCH", "1")
    with pytest.raises(SimulatedKill):
        _tune(grid, tmp_path, 2, heartbeat_interval=1, grace_period=1)
    monkeypatch.delenv("FAKE_KILL_AT_EPOCH")
    time.sleep(2.5)  # let the dead worker's heartbeat go stale (grace period 1 s)
    result = _tune(grid, tmp_path, 2, heartbeat_interval=1, grace_period=1)
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    trials = study.get_trials()
    assert [t.state.name for t in trials][:2] == ["FAIL", "COMPLETE"] and len(trials) == 3
    assert trials[2].state.name in ("COMPLETE", "PRUNED") and trials[2].params != trials[0].params
    assert trials[1].params == trials[0].params  # the re-queued copy of the killed trial
    assert trials[1].user_attrs["cell_hash"] == trials[0].user_attrs["cell_hash"]
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    runs = cell_runs(uri, "tuning", "trial")
    assert len(runs) == 2  # the killed trial's run was reopened, not duplicated
    killed = runs[runs["tags.tumorbench.cell_hash"] == trials[0].user_attrs["cell_hash"]]
    assert killed["tags.tumorbench.resumed"].iloc[0] == "1" and killed["status"].iloc[0] == "FINISHED"
    trial_dirs = tmp_path / "results" / "tune" / "s" / "trials"
    train = next(trial_dirs.glob(f"liver/unet/hu/fold_0__{trials[0].user_attrs['cell_hash']}/train"))
    assert train.joinpath("starts.txt").read_text() == "0\n1\n"  # resumed from its checkpoint
    assert len(cell_runs(uri, "tuning", "study")) == 1 and result.n_complete + result.n_pruned == 2
