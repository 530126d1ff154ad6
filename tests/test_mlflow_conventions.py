"""MLflow conventions (issue 32): source/version tags, readable run names, namespaced tags, the
relative checkpoint tag and ``log_checkpoints``, the experiment rule, and reruns that add no runs.
Real sqlite stores (the project's default store), fake training stages."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from mlflow import MlflowClient

from test_runner_fakes import FAKE_STAGES, fresh_tracking_uri, make_fake_dataset, write_grid
from benchmark import tracking
from benchmark.grid import load_grid
from benchmark.runner import run_grid
from tumorbench_common import mlflow_tags as T


@pytest.fixture
def setup(tmp_path):
    datasets = {"liver": make_fake_dataset(tmp_path / "ds" / "liver", "liver")}
    return datasets, fresh_tracking_uri(tmp_path), tmp_path


def _grid(tmp, datasets, extra: str = "", name: str = "exp") -> Path:
    return write_grid(tmp / "grid.toml", datasets, name, tmp / "results", extra=extra)


def _run(grid, uri):
    return run_grid(grid, tracking_uri=uri, stages=FAKE_STAGES, progress=False)


def _runs(uri: str, experiment: str = "exp", kind: str | None = None) -> list:
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return [r for r in runs if kind is None or r.data.tags.get(T.KIND) == kind]


def test_runs_carry_the_git_commit_source_and_readable_names(setup):
    datasets, uri, tmp = setup
    _run(_grid(tmp, datasets), uri)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(T.__file__).parent, capture_output=True,
                          text=True, check=True).stdout.strip()
    cells, parents = _runs(uri, kind="cell"), _runs(uri, kind="grid")
    assert len(cells) == 2 and len(parents) == 1
    for run in cells + parents:
        assert run.data.tags[T.GIT_COMMIT] == head  # the UI's Version column
        assert run.data.tags[T.SOURCE_TYPE] == "LOCAL" and run.data.tags[T.SOURCE_NAME]
    assert sorted(r.info.run_name for r in cells) == ["liver·unet·hu·f0", "liver·unet·real·f0"]
    assert parents[0].info.run_name == "grid exp" and parents[0].data.tags[T.GRID] == "exp"


def test_git_commit_is_the_code_checkouts_head_and_left_out_outside_git(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "f.txt").write_text("x")
    subprocess.run([*git, "add", "f.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert T.git_commit(repo) == head
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # no repository above tmp_path counts
    assert T.git_commit(plain) is None
    monkeypatch.setattr(T, "git_commit", lambda where=None: None)
    assert T.GIT_COMMIT not in T.source_tags("tumorbench run") and T.source_tags("x")[T.SOURCE_NAME] == "x"
    assert T.command_name(["/venv/bin/tumorbench", "run", "grids/demo.toml"]) == "tumorbench run"  # the UI's Source


def test_tags_are_namespaced_and_cell_fields_are_params_only(setup):
    datasets, uri, tmp = setup
    _run(_grid(tmp, datasets), uri)
    runs = _runs(uri)
    assert {r.data.tags[T.KIND] for r in runs} == {"cell", "grid"}
    for run in runs:
        loose = [k for k in run.data.tags if not k.startswith((T.PREFIX, "mlflow."))]
        assert loose == [], (run.info.run_name, loose)
    cell = _runs(uri, kind="cell")[0]
    assert {"organ", "backbone", "regime", "fold", "seed", "preset"} <= set(cell.data.params)
    fields = {k for k in cell.data.params if not k.startswith(("generator.", "evaluate."))}
    assert not {T.PREFIX + k for k in fields} & set(cell.data.tags)  # a Cell field is never also a tag


def test_a_rerun_that_trains_nothing_adds_no_runs(setup):
    datasets, uri, tmp = setup
    grid = _grid(tmp, datasets)
    assert {o.status for o in _run(grid, uri)} == {"finished"}
    first = sorted(r.info.run_id for r in _runs(uri))
    parent = _runs(uri, kind="grid")[0]
    assert {o.status for o in _run(grid, uri)} == {"skipped"}
    assert {o.status for o in _run(grid, uri)} == {"skipped"}
    assert sorted(r.info.run_id for r in _runs(uri)) == first and len(first) == 3  # 2 cells + 1 parent
    again = _runs(uri, kind="grid")[0]  # untouched: same end time, same one value per summary metric
    assert again.info.status == "FINISHED" and again.info.end_time == parent.info.end_time
    history = MlflowClient(tracking_uri=uri).get_metric_history(parent.info.run_id, "cells_finished")
    assert [m.value for m in history] == [2.0]


def test_a_rebuilt_report_of_the_same_inputs_reuses_its_run(setup):
    from reports.build import ReportOptions, _report_run
    from reports.loader import load_grid as load_report_grid

    datasets, uri, tmp = setup
    _run(_grid(tmp, datasets), uri)
    grid = load_report_grid(uri, "exp")
    ids = []
    for n_boot in (1000, 1000, 2000):
        with _report_run(grid, ReportOptions(experiment="exp", tracking_uri=uri, n_boot=n_boot)) as run_id:
            ids.append(run_id)
    assert ids[0] == ids[1] != ids[2]  # other options are other inputs
    reports = _runs(uri, kind="report")
    assert len(reports) == 2 and {r.info.status for r in reports} == {"FINISHED"}
    assert all(r.info.run_name == "report" and T.GIT_COMMIT in r.data.tags for r in reports)


def test_checkpoint_tag_is_relative_and_logged_only_when_asked(setup):
    datasets, uri, tmp = setup
    outcomes = _run(_grid(tmp, datasets), uri)
    client = MlflowClient(tracking_uri=uri)
    for outcome in outcomes:
        tag = client.get_run(outcome.run_id).data.tags[T.CHECKPOINT]
        assert tag == "train/last.pt" and (Path(outcome.results_dir) / tag).is_file()
        assert "checkpoint" not in {a.path for a in client.list_artifacts(outcome.run_id)}
    (tmp / "second").mkdir()
    uri2 = fresh_tracking_uri(tmp / "second")
    logged = _run(_grid(tmp / "second", datasets, extra="[mlflow]\nlog_checkpoints = true\n"), uri2)
    for outcome in logged:
        names = [a.path for a in MlflowClient(tracking_uri=uri2).list_artifacts(outcome.run_id, "checkpoint")]
        assert names == ["checkpoint/last.pt"]


def test_experiment_defaults_to_the_grid_name_and_may_differ(setup):
    datasets, uri, tmp = setup
    assert tracking.grid_experiment(load_grid(_grid(tmp, datasets))) == "exp"
    shared = _grid(tmp, datasets, extra='[mlflow]\nexperiment = "study"\n', name="part-a")
    assert tracking.grid_experiment(load_grid(shared)) == "study"
    _run(shared, uri)
    assert MlflowClient(tracking_uri=uri).get_experiment_by_name("part-a") is None
    parent = _runs(uri, "study", kind="grid")[0]
    assert parent.info.run_name == "grid part-a" and parent.data.tags[T.GRID] == "part-a"
    assert len(_runs(uri, "study", kind="cell")) == 2


def test_old_stores_are_read_through_the_pre_namespace_names():
    old = {"results_dir": "/r", "git_commit": "abc", T.KIND: "cell"}
    assert T.read_tag(old, T.RESULTS_DIR) == "/r" and T.read_tag(old, T.GIT_COMMIT) == "abc"
    assert T.read_tag({T.RESULTS_DIR: "/new", "results_dir": "/r"}, T.RESULTS_DIR) == "/new"
    assert T.read_tag({}, T.DEVICE, "—") == "—"


def test_runs_nest_under_a_callers_active_run_through_the_client(tmp_path):
    import mlflow

    uri = fresh_tracking_uri(tmp_path)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("user")
    try:
        with mlflow.start_run() as outer:
            with tracking.logged_run("realism", None, tags={T.GENERATORS: "hu"}) as (client, run_id):
                tracking.log_values(client, run_id, params={"n": 3}, metrics={"n_tumors": 3})
    finally:
        mlflow.set_tracking_uri(None)
    run = MlflowClient(tracking_uri=uri).get_run(run_id)
    assert run.data.tags[T.PARENT_RUN] == outer.info.run_id and run.info.experiment_id == outer.info.experiment_id
    assert run.info.status == "FINISHED" and run.data.params == {"n": "3"} and run.data.metrics == {"n_tumors": 3.0}
    assert run.data.tags[T.KIND] == "realism" and run.info.run_name == "realism"


def test_finished_cells_of_an_old_store_are_not_retrained(setup):
    datasets, uri, tmp = setup
    grid = _grid(tmp, datasets)
    _run(grid, uri)
    client = MlflowClient(tracking_uri=uri)
    for run in _runs(uri, kind="cell"):  # as written before the tumorbench.* namespace
        client.set_tag(run.info.run_id, "cell_hash", run.data.tags[T.CELL_HASH])
        client.delete_tag(run.info.run_id, T.CELL_HASH)
    before = len(_runs(uri))
    assert {o.status for o in _run(grid, uri)} == {"skipped"} and len(_runs(uri)) == before
    killed = _runs(uri, kind="cell")[0].info.run_id  # an old store's unfinished cell resumes in its run
    client.update_run(killed, status="KILLED")
    outcomes = {o.run_id: o.status for o in _run(grid, uri)}
    assert outcomes[killed] == "finished" and sorted(outcomes.values()) == ["finished", "skipped"]
    assert len(_runs(uri, kind="cell")) == 2 and len(_runs(uri, kind="grid")) == 2  # a new parent: it trained
