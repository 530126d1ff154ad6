"""A real `mlflow server` on 127.0.0.1 is killed mid-grid and started again, twice (issue 29,
point 6): once while a cell trains (its epochs are spooled, training goes on), once just before a
cell's final writes (metrics, artifacts, status: retried until the server is back). The grid
finishes, nothing missing, nothing doubled (every metric step once, one run per cell).
Marker ``mlflow_server``: skips with the reason when no server can be started here."""
from __future__ import annotations

import json
import os
import signal
import socket
import time
import urllib.request
from collections import Counter

import pytest

from test_runner_fakes import cell_runs, make_fake_dataset, write_grid
from test_slurm_cluster import _drive

EPOCHS, OUTAGE_S = 12, 6


def _serve(store: str, port: int):
    """`mlflow server` in a process group of its own; returns it once /health answers."""
    from benchmark import tracking

    proc = tracking.start_ui(store, port=port, own_session=True)
    for _ in range(480):
        if proc.poll() is not None:
            pytest.skip(f"`mlflow server` exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return proc
        except OSError:
            time.sleep(0.25)
    _stop(proc)
    pytest.skip("`mlflow server` did not answer on 127.0.0.1 within 120 s")


def _stop(proc, sig=signal.SIGTERM) -> None:
    """The server and its web workers (their process group, which _serve created)."""
    os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=30)
    except Exception:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _epochs(results) -> dict[str, int]:
    """Last checkpointed epoch per cell folder."""
    return {p.parent.parent.name: json.loads(p.read_text())["epoch"] for p in results.rglob("train/last.pt")}


def _wait_for(results, pattern: str, n: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while len(list(results.rglob(pattern))) < n:
        assert time.monotonic() < deadline, f"fewer than {n} {pattern}"
        time.sleep(0.05)


def _epoch_reached(results, epoch: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e >= epoch for e in _epochs(results).values()):
            return
        time.sleep(0.1)
    raise AssertionError(f"no cell reached epoch {epoch}")


@pytest.mark.mlflow_server
def test_grid_finishes_once_the_stopped_server_is_back(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store, url = f"sqlite:///{tmp_path / 'server' / 'mlflow.db'}", f"http://127.0.0.1:{port}"
    server = _serve(store, port)
    try:
        ds = make_fake_dataset(tmp_path / "ds" / "liver", "liver")
        grid = write_grid(tmp_path / "grid.toml", {"liver": ds}, "exp", tmp_path / "results", folds="[0, 1]")
        grid.write_text(grid.read_text().replace("epochs = 3", f"epochs = {EPOCHS}"))
        start = time.monotonic()
        driver = _drive(grid, url, "local", SLOW_EPOCH_S="0.4", SLOW_PREVIEWS_S="2",
                        TUMORBENCH_TRACKING_RETRY_S="300")
        _epoch_reached(tmp_path / "results", 1)
        stopped_at = time.monotonic() - start
        _stop(server, signal.SIGKILL)  # the server dies at once, requests in flight included
        at_stop = _epochs(tmp_path / "results")
        time.sleep(OUTAGE_S)
        while_down = _epochs(tmp_path / "results")
        server = _serve(store, port)
        outage = time.monotonic() - start - stopped_at
        # second outage: the third cell is making its previews; its final writes meet a dead server
        _wait_for(tmp_path / "results", "previews_started", 3)
        stopped_2 = time.monotonic() - start
        _stop(server, signal.SIGKILL)
        time.sleep(OUTAGE_S)
        server = _serve(store, port)
        outage_2 = time.monotonic() - start - stopped_2
        out, err = driver.communicate(timeout=600)
        assert driver.returncode == 0, err[-3000:]
        assert json.loads(out.strip().splitlines()[-1]) == ["finished"] * 4
        _check_store(url)
    finally:
        _stop(server)
    # training went on while the server was down (its metrics spooled): the cell that was training
    # checkpointed its last epoch before the server came back
    assert any(while_down[cell] == EPOCHS - 1 > epoch for cell, epoch in at_stop.items()), (at_stop, while_down)
    retried = [line for line in err.splitlines() if "MLflow back after" in line]
    spooled = [line for line in err.splitlines() if "kept in" in line]
    assert retried and "MLflow unreachable during" in err  # the outage was met and ridden out
    assert "retries of get_metric_history" in err or "retries of log_artifact" in err  # the final writes
    print(f"\nserver killed {stopped_at:.1f} s into the grid for {outage:.1f} s, again at {stopped_2:.1f} s "
          f"for {outage_2:.1f} s; grid took "
          f"{time.monotonic() - start:.1f} s; {len(retried)} calls retried until it was back "
          f"({'; '.join(line.split('(')[-1].rstrip(')') for line in retried)}); {len(spooled)} epochs spooled; "
          f"epochs checkpointed at the stop {at_stop}, {OUTAGE_S} s later {while_down}")


def _check_store(url: str) -> None:
    """One FINISHED run per cell, every epoch metric once, the final metrics there, the grid's
    run FINISHED with its cell counts."""
    from mlflow import MlflowClient

    runs = cell_runs(url, "exp")
    assert len(runs) == 4 and set(runs["status"]) == {"FINISHED"} and runs["tags.tumorbench.cell_hash"].nunique() == 4
    client = MlflowClient(url)
    for run_id in runs["run_id"]:
        for key in ("train_loss", "val_tumor_dsc"):
            steps = Counter(m.step for m in client.get_metric_history(run_id, key))
            assert sorted(steps.items()) == [(e, 1) for e in range(EPOCHS)], (key, steps)
        assert len(client.get_metric_history(run_id, "best_val_tumor_dsc")) == 1
    grids = cell_runs(url, "exp", kind="grid")
    assert len(grids) == 1 and grids["status"][0] == "FINISHED" and grids["metrics.cells_finished"][0] == 4
