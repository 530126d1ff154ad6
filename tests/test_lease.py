"""Cell leases (benchmark.lease): one trainer per cell folder.

Identity (host, boot id, PID namespace, pid, Slurm job/step/restart), takeover only of a dead or
superseded holder, heartbeat age on the filesystem's clock, a heartbeat that survives transient
errors, and `CellLease.check` telling a holder it lost its lease."""
import errno
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import benchmark.lease as lease_mod
from benchmark.lease import LEASE_NAME, CellLease, LeaseLost, identity

ROOT = Path(__file__).resolve().parent.parent


def _foreign_lease(folder, **fields):
    folder.mkdir(parents=True, exist_ok=True)
    lease = {"host": "other-node", "pid": 12345, "job": None, "token": "t0", **fields}
    (folder / LEASE_NAME).write_text(json.dumps(lease))
    return folder / LEASE_NAME


def _dead_pid() -> int:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(dead.stdout)


def _wait_until(condition, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


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


def test_lease_age_uses_the_filesystems_clock_not_the_local_one(tmp_path, monkeypatch):
    real_time = time.time
    path = _foreign_lease(tmp_path)  # fresh heartbeat
    monkeypatch.setattr(lease_mod.time, "time", lambda: real_time() + 3600)  # this node's clock 1 h ahead
    assert not CellLease(tmp_path, stale_s=60).acquire()
    os.utime(path, (real_time() - 120, real_time() - 120))  # 2 min old on the file server's clock
    monkeypatch.setattr(lease_mod.time, "time", lambda: real_time() - 3600)  # this node's clock 1 h behind
    assert CellLease(tmp_path, stale_s=60).acquire()
    assert not list(tmp_path.glob(f"{LEASE_NAME}.clock-*"))  # the clock probe is cleaned up


def test_heartbeat_keeps_the_lease_fresh(tmp_path):
    lease = CellLease(tmp_path, heartbeat_s=0.05)
    assert lease.acquire()
    path = tmp_path / LEASE_NAME
    os.utime(path, (time.time() - 100, time.time() - 100))
    assert _wait_until(lambda: time.time() - path.stat().st_mtime < 5)
    lease.release()


def test_dead_or_rebooted_local_holder_is_taken_over(tmp_path):
    me = identity()
    _foreign_lease(tmp_path / "a", **{**me, "pid": _dead_pid(), "token": "t0"})
    assert CellLease(tmp_path / "a").acquire()
    _foreign_lease(tmp_path / "b", **{**me, "pid": os.getppid(), "boot": "an-earlier-boot", "token": "t0"})
    assert CellLease(tmp_path / "b").acquire()  # pid numbers of a previous boot mean nothing
    _foreign_lease(tmp_path / "c", **{**me, "pid": os.getppid(), "token": "t0"})
    assert not CellLease(tmp_path / "c").acquire()  # alive


def test_holder_in_another_pid_namespace_is_judged_by_its_heartbeat(tmp_path):
    path = _foreign_lease(tmp_path, **{**identity(), "pidns": "pid:[4026532999]", "pid": _dead_pid(), "token": "t0"})
    assert not CellLease(tmp_path, stale_s=60).acquire()  # its pid cannot be checked from here
    os.utime(path, (time.time() - 120, time.time() - 120))
    assert CellLease(tmp_path, stale_s=60).acquire()


def test_only_a_later_restart_of_the_same_slurm_job_takes_over(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    _foreign_lease(tmp_path / "requeued", job="77_3", restart=0)
    assert CellLease(tmp_path / "requeued").acquire()  # the requeued job resumes its own cell
    _foreign_lease(tmp_path / "sibling", job="77_3", restart=1)
    assert not CellLease(tmp_path / "sibling").acquire()  # same job, same restart: a live sibling
    _foreign_lease(tmp_path / "newer", job="77_3", restart=2)
    assert not CellLease(tmp_path / "newer").acquire()
    _foreign_lease(tmp_path / "other", job="77_4", restart=0)
    assert not CellLease(tmp_path / "other").acquire()


_CONTENDER = textwrap.dedent("""
    import sys, time
    from benchmark.lease import CellLease
    lease = CellLease(sys.argv[1])
    while time.time() < float(sys.argv[2]):
        time.sleep(0.005)
    got = lease.acquire()
    print(got, flush=True)
    time.sleep(3.0)
    if got:
        lease.release()
""")


def test_processes_of_one_slurm_job_step_do_not_share_a_cell(tmp_path):
    """`srun -n4 tumorbench tune` / two `tumorbench run` in one allocation: 4 real processes with
    the same Slurm job, step and restart count race for one cell; exactly one gets it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "0",
           "SLURM_RESTART_COUNT": "0"}
    start = time.time() + 2.0
    procs = [subprocess.Popen([sys.executable, "-c", _CONTENDER, str(tmp_path / "cell"), str(start)],
                              env={**env, "SLURM_PROCID": str(i)}, stdout=subprocess.PIPE, text=True)
             for i in range(4)]
    answers = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(answers) == ["False", "False", "False", "True"], answers


def test_heartbeat_survives_its_file_vanishing_and_transient_errors(tmp_path, monkeypatch):
    lease = CellLease(tmp_path, heartbeat_s=0.05)
    assert lease.acquire()
    path, aside = tmp_path / LEASE_NAME, tmp_path / "renamed-away"
    os.rename(path, aside)  # another process's rename in flight
    time.sleep(0.4)
    os.rename(aside, path)
    os.utime(path, (time.time() - 100, time.time() - 100))
    assert _wait_until(lambda: time.time() - path.stat().st_mtime < 5), "heartbeat died on FileNotFoundError"
    failures = {"left": 3}
    real_utime = os.utime

    def flaky_utime(*args, **kwargs):
        if failures["left"]:
            failures["left"] -= 1
            raise OSError(errno.ESTALE, "Stale file handle")
        return real_utime(*args, **kwargs)

    monkeypatch.setattr(lease_mod.os, "utime", flaky_utime)
    real_utime(path, (time.time() - 100, time.time() - 100))
    assert _wait_until(lambda: failures["left"] == 0)
    assert _wait_until(lambda: time.time() - path.stat().st_mtime < 5), "heartbeat died on ESTALE"
    lease.check()  # still ours
    lease.release()
    assert not path.exists()


def test_a_holder_whose_lease_was_taken_over_stops_and_never_refreshes_it(tmp_path):
    lease = CellLease(tmp_path, heartbeat_s=0.05)
    assert lease.acquire()
    lease.check()
    path = _foreign_lease(tmp_path, token="newcomer")  # taken over while this process hung
    os.utime(path, (time.time() - 100, time.time() - 100))
    time.sleep(0.4)
    assert time.time() - path.stat().st_mtime > 90  # the old holder's heartbeat left it alone
    with pytest.raises(LeaseLost, match="taken over.*other-node pid 12345"):
        lease.check()
    lease.release()
    assert json.loads(path.read_text())["token"] == "newcomer"  # release leaves the new holder's lease


def test_check_waits_out_a_rename_in_flight_but_not_a_vanished_lease(tmp_path):
    lease = CellLease(tmp_path, heartbeat_s=60)
    assert lease.acquire()
    path, aside = tmp_path / LEASE_NAME, tmp_path / "aside"
    os.rename(path, aside)
    subprocess.Popen([sys.executable, "-c", f"import os, time; time.sleep(0.3); os.rename({str(aside)!r}, {str(path)!r})"])
    lease.check()  # back within the grace period
    path.unlink()
    with pytest.raises(LeaseLost, match="file is gone"):
        lease.check()


_TAKE_OVER = textwrap.dedent("""
    import sys
    from benchmark.lease import CellLease
    print(CellLease(sys.argv[1]).acquire(), flush=True)  # and exits holding it (a later restart)
""")


def _take_over_from_a_later_restart(cell_dir):
    """A real process, restart 1 of this Slurm job, takes the cell (and exits holding it)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SLURM_RESTART_COUNT": "1"}
    out = subprocess.run([sys.executable, "-c", _TAKE_OVER, str(cell_dir)], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "True", out.stderr


def _train_then_lose_the_cell(config, train_items, val_items, out_dir, **kwargs):
    """The fake trainer; the cell is taken over while it logs epoch 1."""
    from test_runner_fakes import fake_train

    def log_metrics(metrics, epoch):
        kwargs["log_metrics"](metrics, epoch)
        if epoch == 1:
            _take_over_from_a_later_restart(Path(out_dir).parent)

    return fake_train(config, train_items, val_items, out_dir, **{**kwargs, "log_metrics": log_metrics})


def _lose_the_cell_after_training(config, train_items, val_items, out_dir, **kwargs):
    from test_runner_fakes import fake_train

    result = fake_train(config, train_items, val_items, out_dir, **kwargs)
    _take_over_from_a_later_restart(Path(out_dir).parent)
    return result


def _run_slurm_job_cell(tmp_path, monkeypatch, train):
    import dataclasses

    from test_runner_fakes import FAKE_STAGES, fresh_tracking_uri, make_fake_dataset, write_grid

    from benchmark.runner import run_grid

    monkeypatch.setenv("SLURM_JOB_ID", "9001")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "0")
    grid = write_grid(tmp_path / "grid.toml", {"liver": make_fake_dataset(tmp_path / "ds", "liver")}, "exp",
                      tmp_path / "results", folds="[0]", regimes='["real"]')
    uri = fresh_tracking_uri(tmp_path)
    [outcome] = run_grid(grid, tracking_uri=uri, stages=dataclasses.replace(FAKE_STAGES, train=train), progress=False)
    return outcome, uri


def test_a_cell_taken_over_mid_training_stops_before_its_next_checkpoint(tmp_path, monkeypatch, capsys):
    from test_runner_fakes import cell_runs

    outcome, uri = _run_slurm_job_cell(tmp_path, monkeypatch, _train_then_lose_the_cell)
    assert outcome.status == "busy" and outcome.error.startswith("lost lease"), outcome
    cell = Path(outcome.results_dir)
    assert json.loads((cell / "train" / "last.pt").read_text())["epoch"] == 0  # epoch 1's never written
    assert not (cell / "DONE").exists() and not (cell / "summary.json").exists()
    new_holder = json.loads((cell / LEASE_NAME).read_text())
    assert new_holder["restart"] == 1  # the old process did not remove the new holder's lease
    runs = cell_runs(uri, "exp")
    assert list(runs["status"]) == ["RUNNING"]  # left to the new holder: not FAILED, not FINISHED
    lines = [line for line in capsys.readouterr().err.splitlines() if "stopped:" in line]
    assert len(lines) == 1 and "taken over" in lines[0] and "restart 1" in lines[0], lines


def test_a_cell_taken_over_after_training_writes_no_predictions(tmp_path, monkeypatch):
    outcome, _ = _run_slurm_job_cell(tmp_path, monkeypatch, _lose_the_cell_after_training)
    assert outcome.status == "busy" and outcome.error.startswith("lost lease"), outcome
    assert not (Path(outcome.results_dir) / "predictions").exists()


def test_an_unreadable_lease_counts_as_held_only_while_it_cannot_have_gone_stale(tmp_path, monkeypatch):
    lease = CellLease(tmp_path, stale_s=60, heartbeat_s=60)
    assert lease.acquire()

    def eio():
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(lease, "_read", eio)
    lease.check()  # confirmed a moment ago: nobody may take it over for 60 s
    monkeypatch.setattr(lease, "_confirmed", time.monotonic() - 31)
    with pytest.raises(LeaseLost, match="unreadable for 30 s"):
        lease.check()
