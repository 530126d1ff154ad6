"""Riding out tracking-server outages: retries with backoff for transient errors only.

Transient: connection refused/reset, timeouts, HTTP 5xx. Not transient: 4xx (a bad request stays
bad) and everything else. MLflow's own urllib3 retries are turned down to 0 for server URIs
(`quiet_mlflow_retries`): they repeat every request blindly, POSTs included, so a ``create_run`` or
``log_batch`` whose answer was lost would create a second run or log a metric step twice, and they
block for up to ~4 min without a word. Here each call is retried with a log line, and the two
non-idempotent calls are made idempotent: ``create_run`` carries a token tag and a retry first looks
for the run the lost answer created; metric batches are re-checked against the run's history before
each retry (`MetricBuffer`, which also keeps metrics in a spool file while the server is down).

Budget: ``TUMORBENCH_TRACKING_RETRY_S`` seconds per call (default 600), backoff 0.5 s doubling to 30 s.
"""
from __future__ import annotations

import json
import os
import re
import sys
import time
import uuid
from pathlib import Path
from time import monotonic as _clock, sleep as _sleep  # module names: tests replace them
from typing import Any, Callable, Mapping

from tumorbench_common.io import write_json_atomic
from tumorbench_common.mlflow_tags import CREATE_TOKEN

RETRY_ENV = "TUMORBENCH_TRACKING_RETRY_S"
_STATUS = re.compile(r"too many (\d{3}) error responses")
_NETWORK_WORDS = ("connection refused", "connection reset", "connection aborted", "remotedisconnected",
                  "max retries exceeded", "timed out", "timeout", "broken pipe", "newconnectionerror")


def retry_budget_s() -> float:
    return float(os.environ.get(RETRY_ENV, "600"))


def quiet_mlflow_retries(uri: str) -> None:
    """MLflow's blind retries off for server URIs (unless the user set them): ours take over."""
    if uri.startswith(("http://", "https://")):
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: network failures, timeouts, HTTP 5xx (never 4xx)."""
    from mlflow.exceptions import InvalidUrlException, MlflowException, RestException

    if isinstance(exc, RestException):  # the server answered: its status says
        return exc.get_http_status_code() >= 500
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    text = str(exc).lower()
    status = _STATUS.search(text)
    if status:
        return int(status.group(1)) >= 500
    if isinstance(exc, MlflowException) and not isinstance(exc, InvalidUrlException):
        return text.startswith("api request to") and any(word in text for word in _NETWORK_WORDS)
    try:
        import requests
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout))


def retry_call(fn: Callable[[int], Any], what: str, budget_s: float | None = None) -> Any:
    """``fn(attempt)`` until it returns, retrying transient errors with backoff for ``budget_s``;
    the last error is raised once the budget is spent (a non-transient one at once)."""
    budget_s = retry_budget_s() if budget_s is None else budget_s
    start, delay, attempt = _clock(), 0.5, 0
    while True:
        try:
            result = fn(attempt)
        except Exception as exc:
            waited = _clock() - start
            if not is_transient(exc) or waited + delay > budget_s:
                if attempt:
                    _say(f"MLflow still unreachable after {waited:.1f} s ({attempt} retries of {what}); giving up")
                raise
            if attempt == 0:
                _say(f"MLflow unreachable during {what} ({_short(exc)}); retrying for up to {budget_s:g} s")
            _sleep(delay)
            delay, attempt = min(delay * 2, 30.0), attempt + 1
            continue
        if attempt:
            _say(f"MLflow back after {_clock() - start:.1f} s ({attempt} retries of {what})")
        return result


def _say(text: str) -> None:
    print(f"tumorbench: {text}", file=sys.stderr, flush=True)


def _short(exc: BaseException) -> str:
    text = str(exc)
    cause = re.search(r"\[Errno \d+\][^\"')]*|too many \d{3} error responses|timed out", text)
    return f"{type(exc).__name__}: {cause.group(0) if cause else text[:160]}"


class RetryingClient:
    """An MlflowClient whose calls retry transient errors (see the module docstring).

    ``raw`` is the wrapped client (for callers that make a call idempotent themselves);
    `with_budget` gives a sibling with another retry budget (0: one attempt).
    """

    def __init__(self, client, budget_s: float | None = None):
        self.raw, self.budget_s = client, budget_s

    def with_budget(self, budget_s: float) -> "RetryingClient":
        return RetryingClient(self.raw, budget_s)

    def __getattr__(self, name: str):
        method = getattr(self.raw, name)
        if not callable(method):
            return method

        def retried(*args, **kwargs):
            return retry_call(lambda _attempt: method(*args, **kwargs), name, self.budget_s)

        return retried

    def create_run(self, experiment_id: str, run_name: str | None = None, tags: dict | None = None, **kwargs):
        """One run even when an answer is lost: a retry first looks for the token's run."""
        token = uuid.uuid4().hex
        tags = {**(tags or {}), CREATE_TOKEN: token}

        def attempt(n: int):
            if n:
                found = self.raw.search_runs([experiment_id], filter_string=f"tags.`{CREATE_TOKEN}` = '{token}'",
                                             max_results=1)
                if found:
                    return found[0]
            return self.raw.create_run(experiment_id, run_name=run_name, tags=tags, **kwargs)

        return retry_call(attempt, "create_run", self.budget_s)

    def delete_tag(self, run_id: str, key: str) -> None:
        """A retry finding the tag gone (the lost answer's delete happened) is success."""
        from mlflow.exceptions import MlflowException

        def attempt(n: int):
            try:
                self.raw.delete_tag(run_id, key)
            except MlflowException as exc:
                if not (n and exc.error_code == "RESOURCE_DOES_NOT_EXIST"):
                    raise

        retry_call(attempt, "delete_tag", self.budget_s)


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
