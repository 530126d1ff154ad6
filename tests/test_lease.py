"""Cell leases (benchmark.lease): one trainer per cell folder."""
import json
import os
import subprocess
import sys
import time

from benchmark.lease import LEASE_NAME, CellLease


def _foreign_lease(folder, **fields):
    folder.mkdir(parents=True, exist_ok=True)
    lease = {"host": "other-node", "pid": 12345, "job": None, "token": "t0", **fields}
    (folder / LEASE_NAME).write_text(json.dumps(lease))
    return folder / LEASE_NAME


def test_second_holder_is_refused_until_release(tmp_path):
    first, second = CellLease(tmp_path), CellLease(tmp_path)
    assert first.acquire()
    assert not second.acquire()
    assert f"pid {os.getpid()}" in second.holder and "heartbeat" in second.holder
    first.release()
    assert not (tmp_path / LEASE_NAME).exists()
    assert second.acquire()
    second.release()


def test_live_foreign_lease_is_respected_and_a_stale_one_taken_over(tmp_path):
    path = _foreign_lease(tmp_path)
    assert not CellLease(tmp_path, stale_s=60).acquire()
    os.utime(path, (time.time() - 120, time.time() - 120))  # heartbeat 2 min old
    lease = CellLease(tmp_path, stale_s=60)
    assert lease.acquire()
    assert json.loads(path.read_text())["token"] == lease.me["token"]
    lease.release()


def test_heartbeat_keeps_the_lease_fresh(tmp_path):
    lease = CellLease(tmp_path, heartbeat_s=0.05)
    assert lease.acquire()
    path = tmp_path / LEASE_NAME
    os.utime(path, (time.time() - 100, time.time() - 100))
    time.sleep(0.3)
    assert time.time() - path.stat().st_mtime < 5
    lease.release()


def test_dead_local_holder_and_same_slurm_job_take_over(tmp_path, monkeypatch):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    _foreign_lease(tmp_path / "a", host=socket.gethostname(), pid=int(dead.stdout))
    assert CellLease(tmp_path / "a").acquire()
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    _foreign_lease(tmp_path / "b", job="77_3")
    assert CellLease(tmp_path / "b").acquire()  # the requeued job resumes its own cell
    _foreign_lease(tmp_path / "c", job="77_4")
    assert not CellLease(tmp_path / "c").acquire()
