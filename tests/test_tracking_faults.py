"""Tracking-server faults without a server (issue 29, point 6): which errors are retried, runs and
metric steps never doubled by a retry, metrics spooled while MLflow is down, one cell's failed
write never ends the grid nor hides the cell's own error. The real-server outage test is in
tests/test_mlflow_outage.py."""
from __future__ import annotations

import json
from collections import Counter

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException, RestException

from benchmark import tracking, tracking_retry
from test_runner_fakes import FAKE_STAGES, fresh_tracking_uri, make_fake_dataset, write_grid

REFUSED = MlflowException("API request to http://127.0.0.1:5000/api/2.0/mlflow/runs/log-batch failed with exception "
                          "HTTPConnectionPool(host='127.0.0.1', port=5000): Max retries exceeded (Caused by "
                          "NewConnectionError('Failed to establish a new connection: [Errno 111] Connection refused'))")


@pytest.mark.parametrize("exc, transient", [
    (REFUSED, True),
    (MlflowException("API request to http://h/api failed with exception ('Connection aborted.', "
                     "ConnectionResetError(104, 'Connection reset by peer'))"), True),
    (MlflowException("API request to http://h/api failed with timeout exception Read timed out."), True),
    (MlflowException("API request to http://h/api failed with exception Max retries exceeded: "
                     "too many 503 error responses"), True),
    (MlflowException("API request to http://h/api failed with exception too many 429 error responses"), False),
    (RestException({"error_code": "INTERNAL_ERROR", "message": "database is locked"}), True),  # HTTP 500
    (RestException({"error_code": "TEMPORARILY_UNAVAILABLE", "message": "busy"}), True),  # HTTP 503
    (RestException({"error_code": "INVALID_PARAMETER_VALUE", "message": "bad key"}), False),  # HTTP 400
    (RestException({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no run"}), False),  # HTTP 404
    (ConnectionRefusedError(111, "refused"), True),
    (TimeoutError("timed out"), True),
    (ValueError("bad value"), False),
])
def test_only_network_errors_timeouts_and_5xx_are_transient(exc, transient):
    assert tracking_retry.is_transient(exc) is transient


@pytest.fixture
def no_sleep(monkeypatch):
    """Backoff waits recorded, not slept: a fake clock advances by each wait."""
    sleeps = []
    monkeypatch.setattr(tracking_retry, "_sleep", sleeps.append)
    monkeypatch.setattr(tracking_retry, "_clock", lambda: sum(sleeps))
    return sleeps


def test_transient_errors_are_retried_with_backoff_and_4xx_at_once(no_sleep, capsys):
    calls = []

    def flaky(attempt):
        calls.append(attempt)
        if attempt < 3:
            raise REFUSED
        return "ok"

    assert tracking_retry.retry_call(flaky, "set_tag", budget_s=60) == "ok"
    assert calls == [0, 1, 2, 3] and no_sleep == [0.5, 1.0, 2.0]
    err = capsys.readouterr().err
    assert "MLflow unreachable during set_tag" in err and "MLflow back after" in err and "3 retries" in err
    bad = RestException({"error_code": "INVALID_PARAMETER_VALUE", "message": "bad"})
    with pytest.raises(RestException):
        tracking_retry.retry_call(lambda attempt: calls.append(attempt) or (_ for _ in ()).throw(bad), "x", 60)
    assert calls[-1] == 0 and calls.count(0) == 2  # the 4xx was tried once


def test_retries_stop_when_the_budget_is_spent(no_sleep):
    with pytest.raises(MlflowException):
        tracking_retry.retry_call(lambda attempt: (_ for _ in ()).throw(REFUSED), "x", budget_s=3)
    assert sum(no_sleep) <= 3 and len(no_sleep) == 2  # 0.5 + 1.0; a third wait (2.0) would pass 3 s


class LostAnswers:
    """A real (sqlite) MlflowClient whose chosen calls do their work, then raise like a reset
    connection (the answer is lost) ``times`` times; ``down``: calls fail before doing anything."""

    def __init__(self, uri, lose=(), times=1):
        self.inner, self.lose, self.times, self.down = MlflowClient(uri), set(lose), times, False
        self.sent = Counter()  # (key, step) of every metric that reached the store

    def __getattr__(self, name):
        method = getattr(self.inner, name)

        def call(*args, **kwargs):
            if self.down:
                raise REFUSED
            result = method(*args, **kwargs)
            self.sent.update((m.key, m.step) for m in kwargs.get("metrics") or ())
            if name in self.lose and self.times > 0:
                self.times -= 1
                raise ConnectionResetError(104, "Connection reset by peer")
            return result

        return call


def test_a_retried_create_run_whose_answer_was_lost_makes_one_run(tmp_path, no_sleep):
    uri = fresh_tracking_uri(tmp_path)
    client = tracking_retry.RetryingClient(LostAnswers(uri, lose={"create_run"}))
    exp = client.create_experiment("e")
    run = client.create_run(exp, run_name="cell", tags={"cell_hash": "abc"})
    runs = MlflowClient(uri).search_runs([exp])
    assert [r.info.run_id for r in runs] == [run.info.run_id]


def _steps(uri, run_id, key="train_loss"):
    return Counter(m.step for m in MlflowClient(uri).get_metric_history(run_id, key))


def test_metrics_are_spooled_while_mlflow_is_down_and_sent_once_when_back(tmp_path, no_sleep, capsys):
    uri = fresh_tracking_uri(tmp_path)
    flaky = LostAnswers(uri)
    client = tracking_retry.RetryingClient(flaky)
    run_id = client.create_run(client.create_experiment("e")).info.run_id
    spool = tmp_path / "cell" / "mlflow_spool.json"
    buffer = tracking.MetricBuffer(client, run_id, spool=spool)
    buffer.log_epoch({"train_loss": 0.9}, 0)
    flaky.down = True
    for epoch in (1, 2):  # training goes on; nothing raised
        buffer.log_epoch({"train_loss": 0.9 - epoch / 10, "val_tumor_dsc": epoch / 10}, epoch)
    assert sorted((d["key"], d["step"]) for d in json.loads(spool.read_text())) == [
        ("train_loss", 1), ("train_loss", 2), ("val_tumor_dsc", 1), ("val_tumor_dsc", 2)]
    assert "metrics of step 2 kept in" in capsys.readouterr().err
    flaky.down = False
    # the process dies here; the next invocation of the cell sends what the spool holds
    again = tracking.MetricBuffer(client, run_id, spool=spool)
    again.log_epoch({"train_loss": 0.6}, 3)
    assert _steps(uri, run_id) == {0: 1, 1: 1, 2: 1, 3: 1} and _steps(uri, run_id, "val_tumor_dsc") == {1: 1, 2: 1}
    assert not spool.exists()


def test_a_metric_batch_whose_answer_was_lost_is_not_logged_twice(tmp_path, no_sleep):
    uri = fresh_tracking_uri(tmp_path)
    lossy = LostAnswers(uri, lose={"log_batch"}, times=2)
    client = tracking_retry.RetryingClient(lossy)
    run_id = client.create_run(client.create_experiment("e")).info.run_id
    buffer = tracking.MetricBuffer(client, run_id, spool=tmp_path / "spool.json")
    for epoch in range(3):
        buffer.log_epoch({"train_loss": 1.0 / (epoch + 1)}, epoch)
    buffer.log({"test_tumor_dsc": 0.5})
    buffer.flush()
    assert _steps(uri, run_id) == {0: 1, 1: 1, 2: 1}
    assert set(lossy.sent.values()) == {1}  # no blind resend of a batch that had landed
    assert [m.value for m in MlflowClient(uri).get_metric_history(run_id, "test_tumor_dsc")] == [0.5]


# --- per-cell isolation -----------------------------------------------------------------------
def _grid(tmp_path):
    ds = make_fake_dataset(tmp_path / "ds" / "liver", "liver")
    return write_grid(tmp_path / "grid.toml", {"liver": ds}, "exp", tmp_path / "results", folds="[0, 1]")


def test_a_failed_write_while_recording_a_failure_neither_stops_the_grid_nor_hides_the_error(tmp_path, monkeypatch):
    from benchmark.runner import run_grid

    real_log_text = MlflowClient.log_text

    def log_text(self, run_id, text, artifact_file):
        if artifact_file == "error.txt":
            raise MlflowException("artifact store refused the upload (quota exceeded)")
        return real_log_text(self, run_id, text, artifact_file)

    monkeypatch.setattr(MlflowClient, "log_text", log_text)
    monkeypatch.setenv("FAKE_FAIL_REGIME", "hu")
    outcomes = run_grid(_grid(tmp_path), tracking_uri=fresh_tracking_uri(tmp_path), stages=FAKE_STAGES,
                        progress=False)  # sequential executor
    assert [(o.cell.regime, o.cell.fold, o.status) for o in outcomes] == [
        ("real", 0, "finished"), ("hu", 0, "failed"), ("real", 1, "finished"), ("hu", 1, "failed")]
    for outcome in outcomes[1::2]:  # the first error first, the second as a note
        assert outcome.error.startswith("ValueError: fake training diverged")
        assert "recording it in MLflow failed too: MlflowException: artifact store refused" in outcome.error


def test_an_error_outside_the_cell_pipeline_fails_that_cell_only(tmp_path, monkeypatch):
    from benchmark.runner import run_grid

    real_open = tracking.open_cell_run

    def open_cell_run(client, experiment_id, *, cell, **kwargs):
        if cell.regime == "hu" and cell.fold == 0:
            raise MlflowException("INVALID_PARAMETER_VALUE: tag value too long")
        return real_open(client, experiment_id, cell=cell, **kwargs)

    monkeypatch.setattr(tracking, "open_cell_run", open_cell_run)
    outcomes = run_grid(_grid(tmp_path), tracking_uri=fresh_tracking_uri(tmp_path), stages=FAKE_STAGES, progress=False)
    assert [o.status for o in outcomes] == ["finished", "failed", "finished", "finished"]
    assert "tag value too long" in outcomes[1].error
