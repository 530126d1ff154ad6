"""MLflow bookkeeping for grids and cells (client API only: safe in worker processes).

Store: ``sqlite:///<cwd>/mlruns/mlflow.db`` with artifacts in ``<cwd>/mlruns/artifacts``,
unless ``--tracking-uri`` or ``MLFLOW_TRACKING_URI`` says otherwise (any MLflow server or
SQLAlchemy URL). Tags/params/metrics follow docs/contracts.md (the report reads them).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Mapping

from benchmark.tracking_retry import MetricBuffer, RetryingClient, quiet_mlflow_retries
from tumorbench_common import mlflow_tags as T
from tumorbench_common.tracking_uri import resolve_tracking_uri  # noqa: F401  (its one home)


def local_artifact_root(uri: str) -> Path | None:
    """``<db folder>/artifacts`` for a sqlite store (None for servers / other databases)."""
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///"):]).resolve().parent / "artifacts"
    return None


def client_for(uri: str):
    """An MlflowClient for ``uri`` whose calls ride out server outages (`RetryingClient`);
    creates the sqlite folder first (sqlite will not)."""
    from mlflow import MlflowClient

    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    quiet_mlflow_retries(uri)
    return RetryingClient(MlflowClient(tracking_uri=uri))


def ensure_experiment(client, name: str, uri: str) -> str:
    """Experiment id of ``name``, created (artifacts next to a sqlite store) if missing."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    root = local_artifact_root(uri)
    location = (root / re.sub(r"[^\w.-]+", "_", name)).as_uri() if root else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:  # another worker created it meanwhile
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def grid_experiment(grid) -> str:
    """The MLflow experiment of ``grid``: its ``[mlflow] experiment``, default its ``name``
    (docs/runner.md: a different experiment is allowed; grids sharing one are reported together)."""
    return grid.mlflow.get("experiment") or grid.name


def start_parent_run(client, experiment_id: str, *, name: str, kind: str, note: str,
                     tags: Mapping[str, str] | None = None) -> str:
    run = client.create_run(experiment_id, run_name=name, tags={
        T.KIND: kind, T.NOTE: note, **T.source_tags(), **(tags or {})})
    return run.info.run_id


def finished_runs(client, experiment_id: str) -> list:
    """Every FINISHED run of the experiment (all pages)."""
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string="attributes.status = 'FINISHED'",
                                  max_results=5000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def open_grid_run(client, experiment_id: str, grid, cells, kind: str = "cell") -> tuple[str, bool]:
    """(parent run id, reused): the grid invocation's parent run. When every cell already has a
    FINISHED run (a rerun that trains nothing) the parent of an earlier invocation of the same cells
    (tag ``tumorbench.grid_hash``) is reused, so reruns add no runs; otherwise a new one is created."""
    import hashlib

    grid_hash = hashlib.sha256(",".join(sorted(c.hash for c in cells)).encode()).hexdigest()[:12]
    done = {T.read_tag(r.data.tags, T.CELL_HASH) for r in finished_runs(client, experiment_id)
            if r.data.tags.get(T.KIND) == kind}
    if all(c.hash in done for c in cells):
        earlier = find_tagged(client, experiment_id, T.GRID_HASH, grid_hash, "grid")
        if earlier:
            return earlier[0].info.run_id, True
    parent = start_parent_run(
        client, experiment_id, name=f"grid {grid.name}", kind="grid",
        note=f"{len(cells)} cells of grid `{grid.path}`; results under `{grid.results_dir}`.",
        tags={T.GRID: grid.name, T.GRID_HASH: grid_hash, T.RESULTS_DIR: str(grid.results_dir)})
    client.log_text(parent, grid.source, "grid.toml")
    return parent, False


def find_tagged(client, experiment_id: str, key: str, value: str, kind: str) -> list:
    """Runs of ``kind`` whose tag ``key`` is ``value``, newest first (the tag's pre-namespace name
    too, `tumorbench_common.mlflow_tags.read_tag`, when none has the new one)."""
    for name in dict.fromkeys((key, key.removeprefix(T.PREFIX))):
        runs = client.search_runs([experiment_id], filter_string=f"tags.`{name}` = '{value}' and "
                                  f"tags.`{T.KIND}` = '{kind}'", order_by=["attributes.start_time DESC"], max_results=5)
        if runs:
            return list(runs)
    return []


def find_run(client, experiment_id: str, cell_hash: str, kind: str):
    """The newest FINISHED run tagged with ``cell_hash`` and ``kind``, else the newest (None if none)."""
    runs = find_tagged(client, experiment_id, T.CELL_HASH, cell_hash, kind)
    finished = [r for r in runs if r.info.status == "FINISHED"]
    return (finished or runs or [None])[0]


def open_cell_run(client, experiment_id: str, *, cell, tags: Mapping[str, str], kind: str,
                  parent_run_id: str | None, note: str, run_name: str | None = None) -> tuple[str, bool]:
    """Create the cell's run, or reopen its unfinished one (same run id, status RUNNING).

    Returns:
        (run_id, resumed): ``resumed`` is True when an earlier RUNNING/FAILED/KILLED run of
        the same cell hash was reopened.
    """
    from mlflow.entities import Param

    from benchmark.slurm import job_tags

    existing = find_run(client, experiment_id, cell.hash, kind)
    if existing is not None:
        client.update_run(existing.info.run_id, status="RUNNING")
        for key, value in job_tags().items():  # the requeued / rerun job's own log
            client.set_tag(existing.info.run_id, key, value)
        for stale in (T.ERROR, T.STOPPED):  # from the attempt that is now retried
            if stale in existing.data.tags:
                client.delete_tag(existing.info.run_id, stale)
        resumed = int(T.read_tag(existing.data.tags, T.RESUMED, "0")) + 1
        client.set_tag(existing.info.run_id, T.RESUMED, str(resumed))
        return existing.info.run_id, True
    all_tags = {T.KIND: kind, T.NOTE: note, T.CELL_HASH: cell.hash, **T.source_tags(), **tags, **job_tags()}
    if parent_run_id:
        all_tags[T.PARENT_RUN] = parent_run_id
    run = client.create_run(experiment_id, run_name=run_name or cell.run_name, tags=all_tags)
    params = [Param(k, v[:6000]) for k, v in cell.params().items()]
    client.log_batch(run.info.run_id, params=params)
    return run.info.run_id, False


def active_fluent_run():
    """``(client, run)`` of the run a caller opened with ``mlflow.start_run()`` around our API, else
    None (mlflow is only imported when someone already imported it, so no run can exist otherwise).
    TumorBench itself only uses the client: this is how its runs nest under a user's."""
    if "mlflow" not in sys.modules:
        return None
    import mlflow

    run = mlflow.active_run()
    return None if run is None else (client_for(mlflow.get_tracking_uri()), run)


@contextmanager
def logged_run(kind: str, experiment: str | None, tracking_uri: str | None = None, *,
               tags: Mapping[str, str] | None = None, name: str | None = None):
    """``(client, run_id)`` of a new run of ``kind`` (run name ``name`` or ``kind``): a child of the
    caller's active MLflow run if there is one (`active_fluent_run`), else a run in ``experiment``
    of ``tracking_uri`` (default: the configured store). FINISHED on exit, FAILED on an error."""
    active = active_fluent_run()
    if active is not None:
        client, experiment_id = active[0], active[1].info.experiment_id
        tags = {**(tags or {}), T.PARENT_RUN: active[1].info.run_id}
    else:
        uri = resolve_tracking_uri(tracking_uri)
        client = client_for(uri)
        experiment_id = ensure_experiment(client, experiment, uri)
    run_id = client.create_run(experiment_id, run_name=name or kind,
                               tags={T.KIND: kind, **T.source_tags(), **(tags or {})}).info.run_id
    try:
        yield client, run_id
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")


def log_values(client, run_id: str, params: Mapping[str, Any] = {}, metrics: Mapping[str, Any] = {}) -> None:
    """Params and step-0 metrics in one request each (`MetricBuffer` for the metrics)."""
    from mlflow.entities import Param

    if params:
        client.log_batch(run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])
    buffer = MetricBuffer(client, run_id)
    buffer.log(metrics)
    buffer.flush()


def cross_organ_metrics(organ: str, summary: Mapping[str, Any]) -> dict[str, float]:
    """``xorgan_early_sensitivity_<organ>`` / ``xorgan_patient_sensitivity_<organ>``."""
    values = {f"xorgan_early_sensitivity_{organ}": summary.get("early_sensitivity"),
              f"xorgan_patient_sensitivity_{organ}": summary.get("patient", {}).get("sensitivity")}
    return {k: float(v) for k, v in values.items() if v is not None}


def start_ui(tracking_uri: str | None = None, port: int = 5000, host: str = "127.0.0.1", *,
             own_session: bool = False):
    """Start ``mlflow server`` (1 worker) for the store on ``host:port``; returns the Popen.

    The caller waits on it (CLI) or terminates it (tests). ``own_session``: the server and the
    web workers it starts get a process group of their own (so a test can stop all of them).
    """

    uri = resolve_tracking_uri(tracking_uri)
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
           "--host", host, "--port", str(port), "--workers", "1"]
    root = local_artifact_root(uri)
    if root is not None:
        client_for(uri)  # creates the folder so a fresh store opens
        cmd += ["--default-artifact-root", root.as_uri()]
    # The server's background job runner (GenAI jobs) is a third Python process we never use.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, env=env, start_new_session=own_session)


def serve_ui(tracking_uri: str | None = None, port: int = 5000) -> int:
    """Run the UI in the foreground until Ctrl-C; returns the server's exit code."""
    from benchmark.errors import InputError

    if not 0 < port < 65536:
        raise InputError(f"--port: {port} is not a TCP port (1-65535)")
    process = start_ui(tracking_uri, port=port)
    print(f"MLflow UI for {resolve_tracking_uri(tracking_uri)}: http://127.0.0.1:{port}  (Ctrl-C stops it)",
          flush=True)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        return 0
