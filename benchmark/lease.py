"""One cell, one trainer: a lease file with a heartbeat in the cell's folder.

``<cell folder>/.lease`` holds who trains the cell (host, pid, Slurm job, a random token); its
mtime is the heartbeat, refreshed by a daemon thread every ``heartbeat_s``. Another invocation
that finds a live lease skips the cell and says so. A lease is taken over when it is stale
(heartbeat older than ``stale_s``), when its holder ran on this host and that process is gone,
or when it belongs to the same Slurm job (a requeued job resumes its own cell at once).

Works on a shared filesystem (O_EXCL create; a stale lease is moved aside by rename, and the
mover checks it moved the stale one before creating its own).
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path

STALE_S = float(os.environ.get("TUMORBENCH_LEASE_STALE_S", 300))
HEARTBEAT_S = float(os.environ.get("TUMORBENCH_LEASE_HEARTBEAT_S", 30))
LEASE_NAME = ".lease"


def slurm_job() -> str | None:
    """This process's Slurm job (array job_task), None outside Slurm."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class CellLease:
    """``acquire()`` -> bool; ``release()``; ``holder`` describes the other owner after a refusal."""

    def __init__(self, folder: str | os.PathLike, *, stale_s: float = STALE_S, heartbeat_s: float = HEARTBEAT_S):
        self.path = Path(folder) / LEASE_NAME
        self.stale_s, self.heartbeat_s = stale_s, heartbeat_s
        self.me = {"host": socket.gethostname(), "pid": os.getpid(), "job": slurm_job(), "token": uuid.uuid4().hex}
        self.holder: str = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if self._create():
                self._start_heartbeat()
                return True
            other, age = self._read()
            if other is None:  # vanished meanwhile (released): try again
                continue
            if not self._may_take_over(other, age):
                self.holder = (f"{other.get('host')} pid {other.get('pid')}"
                               + (f" Slurm job {other['job']}" if other.get("job") else "")
                               + f", heartbeat {age:.0f} s ago")
                return False
            self._move_aside(other)
        return False

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        other, _ = self._read()
        if other is not None and other.get("token") == self.me["token"]:
            self.path.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    # -- internals ------------------------------------------------------------------------
    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as fh:
            json.dump(self.me, fh)
        return True

    def _read(self) -> tuple[dict | None, float]:
        try:
            age = time.time() - self.path.stat().st_mtime
            return json.loads(self.path.read_text() or "{}"), age
        except FileNotFoundError:
            return None, 0.0
        except ValueError:  # being written right now: treat as fresh and foreign
            return {"host": "?", "pid": "?", "token": "?"}, 0.0

    def _may_take_over(self, other: dict, age: float) -> bool:
        if age > self.stale_s:
            return True
        if self.me["job"] is not None and other.get("job") == self.me["job"]:
            return True  # a requeued Slurm job taking back its own cell
        if other.get("host") == self.me["host"] and isinstance(other.get("pid"), int):
            return not _pid_alive(other["pid"])
        return False

    def _move_aside(self, stale: dict) -> None:
        aside = self.path.with_name(f"{LEASE_NAME}.stale-{self.me['token']}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        try:
            moved = json.loads(aside.read_text() or "{}")
        except ValueError:
            moved = {}
        if moved.get("token") != stale.get("token"):  # we moved a fresh lease someone just took: put it back
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass
        aside.unlink(missing_ok=True)

    def _start_heartbeat(self) -> None:
        def beat() -> None:
            while not self._stop.wait(self.heartbeat_s):
                try:
                    os.utime(self.path)
                except FileNotFoundError:
                    return

        self._thread = threading.Thread(target=beat, name="cell-lease-heartbeat", daemon=True)
        self._thread.start()
