"""MLflow bookkeeping for grids and cells (client API only: safe in worker processes).

Store: ``sqlite:///<cwd>/mlruns/mlflow.db`` with artifacts in ``<cwd>/mlruns/artifacts``,
unless ``--tracking-uri`` or ``MLFLOW_TRACKING_URI`` says otherwise (any MLflow server or
SQLAlchemy URL). Tags/params/metrics follow docs/contracts.md (the report reads them).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Mapping

from benchmark.io import write_json_atomic  # noqa: E402
from benchmark.tracking_retry import RetryingClient, is_transient, quiet_mlflow_retries, retry_call  # noqa: E402
from tumorbench_common import mlflow_tags as T  # noqa: E402
from tumorbench_common.tracking_uri import resolve_tracking_uri  # noqa: E402,F401  (its one home)



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
    """The run a caller opened with ``mlflow.start_run()`` around our API, else None (mlflow is only
    imported when someone already imported it, so no run can exist otherwise). TumorBench itself
    only uses the client: this is how its runs nest under a user's."""
    if "mlflow" not in sys.modules:
        return None
    import mlflow

    return mlflow.active_run()


@contextmanager
def logged_run(kind: str, experiment: str | None, tracking_uri: str | None = None, *,
               tags: Mapping[str, str] | None = None, name: str | None = None):
    """``(client, run_id)`` of a new run of ``kind`` (run name ``name`` or ``kind``): a child of the
    caller's active MLflow run if there is one (`active_fluent_run`), else a run in ``experiment``
    of ``tracking_uri`` (default: the configured store). FINISHED on exit, FAILED on an error."""
    active = active_fluent_run()
    if active is not None:
        import mlflow

        client, experiment_id = client_for(mlflow.get_tracking_uri()), active.info.experiment_id
        tags = {**(tags or {}), T.PARENT_RUN: active.info.run_id}
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


class MetricBuffer:
    """Collects metrics and sends them in one ``log_batch`` call per flush.

    One request per value is ~5x slower on sqlite. The trainer's per-epoch callback uses
    `log_epoch`: one request per epoch carrying all its values, sent right away and before the
    epoch's checkpoint is written, so a killed run never has a checkpoint for an epoch whose
    metrics were lost. A resumed run replays the epochs after its last checkpoint; an epoch
    metric whose (key, step) the run already has is dropped, so every epoch is in MLflow once.

    Outages: when the server is unreachable, `log_epoch` keeps the unsent metrics in memory and in
    ``spool`` (a JSON file written before the checkpoint; training goes on) and sends them with a
    later epoch once the server answers; `flush` retries for the full budget. Every send first
    reads the run's history of the keys it carries, so a batch whose answer was lost is never
    logged twice; the next invocation of a cell sends what an earlier one left in its spool.
    """

    def __init__(self, client, run_id: str, flush_every: int = 50, spool: Path | None = None):
        self.client, self.run_id, self.flush_every, self.spool = client, run_id, flush_every, spool
        self._pending: list[tuple[Any, bool]] = []  # (Metric, dropped if its step is already logged)
        self._history: dict[str, list] = {}
        if spool is not None and spool.is_file():
            self._pending = _read_spool(spool)

    def log(self, metrics: Mapping[str, Any], step: int = 0, *, once_per_step: bool = False) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        for key, value in metrics.items():
            if value is None or isinstance(value, bool):
                continue
            value = float(value)
            if value == value:  # NaN is not a metric value
                self._pending.append((Metric(key, value, now, int(step)), once_per_step))
        if len(self._pending) >= self.flush_every:
            self.flush()

    def log_epoch(self, metrics: Mapping[str, Any], step: int) -> None:
        """Send now (one attempt); while the server is down, spool and go on."""
        self.log(metrics, step, once_per_step=True)
        try:
            self._send(budget_s=0)
        except Exception as exc:
            if not is_transient(exc):
                raise
            self._save_spool()
            print(f"tumorbench: MLflow unreachable; metrics of step {int(step)} kept in "
                  f"{self.spool or 'memory'} ({len(self._pending)} values) until it answers",
                  file=sys.stderr, flush=True)

    def flush(self) -> None:
        """Send everything pending, retrying transient errors for the full budget."""
        try:
            self._send(budget_s=None)
        except Exception:
            self._save_spool()
            raise

    def _send(self, budget_s: float | None) -> None:
        if self._pending:
            retry_call(self._send_once, "log_batch", budget_s)
        if self.spool is not None and not self._pending:
            self.spool.unlink(missing_ok=True)

    def _send_once(self, attempt: int) -> None:
        raw = getattr(self.client, "raw", self.client)
        while self._pending:  # log_batch accepts at most 1000 metrics
            chunk = [m for m, once in self._pending[:1000] if not self._logged(raw, m, once)]
            if chunk:
                try:
                    raw.log_batch(self.run_id, metrics=chunk)
                except Exception:
                    self._history.clear()  # the batch may have landed (answer lost): read again next time
                    raise
            for metric in chunk:
                self._history[metric.key].append(metric)
            self._pending = self._pending[1000:]

    def _logged(self, raw, metric, once_per_step: bool) -> bool:
        """Already in the run: the same step (epoch metrics) or the same step and value."""
        if metric.key not in self._history:
            self._history[metric.key] = list(raw.get_metric_history(self.run_id, metric.key))
        return any(m.step == metric.step and (once_per_step or m.value == metric.value)
                   for m in self._history[metric.key])

    def _save_spool(self) -> None:
        if self.spool is not None and self._pending:
            write_json_atomic(self.spool, [{"key": m.key, "value": m.value, "timestamp": m.timestamp,
                                            "step": m.step, "once_per_step": once} for m, once in self._pending])


def _read_spool(path: Path) -> list:
    from mlflow.entities import Metric

    return [(Metric(d["key"], d["value"], d["timestamp"], d["step"]), d["once_per_step"])
            for d in json.loads(path.read_text())]


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
