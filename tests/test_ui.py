"""`tumorbench ui`: the MLflow server starts on loopback, answers HTTP 200, and stops."""
from __future__ import annotations

import socket
import time
import urllib.request

from test_runner_fakes import fresh_tracking_uri
from benchmark.tracking import start_ui


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ui_serves_the_store_on_loopback(tmp_path):
    port = _free_port()
    process = start_ui(fresh_tracking_uri(tmp_path), port=port)
    try:
        status, deadline = None, time.monotonic() + 240
        while status is None and time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    status = response.status
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=5", timeout=5) as r:
                    body = r.read().decode()
            except OSError:
                time.sleep(0.5)
        assert status == 200, f"server exited with {process.poll()}" if process.poll() is not None else "no answer"
        assert '"Default"' in body  # the API answers from the test's own store
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert process.returncode is not None
