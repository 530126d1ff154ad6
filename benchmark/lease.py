"""One cell, one trainer: a lease file with a heartbeat in the cell's folder.

``<cell folder>/.lease`` holds who trains the cell: host, boot id, PID namespace, pid, Slurm job
(array job_task), step and restart count, and a random token. Its mtime is the heartbeat, refreshed
by a daemon thread every ``heartbeat_s``. Another invocation that finds a live lease skips the cell
and says so. A lease is taken over only when its holder is dead or superseded:

- its heartbeat is older than ``stale_s`` (any host; the only test for a holder on another host
  or in another PID namespace of this host, whose pid cannot be checked from here);
- it ran on this host, this boot and this PID namespace and that pid is gone, or it ran on this
  host before the last reboot;
- it is an earlier restart of the same Slurm job (a requeued job resumes its own cell at once).

Two processes of one Slurm job with the same restart count (two ``tumorbench run`` in one
allocation, ``srun -n4 tumorbench tune``) are two live holders: the second one does not take over.

The heartbeat's age is measured against the shared filesystem's own clock (the mtime of a probe
file touched in the lease folder), never against this host's ``time.time()``: a clock skew between
nodes and the file server neither makes a live lease look stale nor keeps a dead one alive.

The holder re-reads its token at every beat and `CellLease.check` re-reads it before each
checkpoint and the final MLflow write: a process whose lease was taken over raises `LeaseLost`
there and stops writing. Transient filesystem errors (ESTALE, a rename by another process) are
logged and retried with backoff; they never end the heartbeat.

Beside it, ``.lease.progress`` says how far the holder's training got (`CellLease.note_epoch`, written
each epoch) so the grid's cells bar can show every running cell's epoch, local workers and Slurm jobs
alike (`read_epoch`: only a note carrying the live lease's token counts).

Works on a shared filesystem (O_EXCL create; a stale lease is moved aside by rename, and the
mover checks it moved the stale one before creating its own).
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path

STALE_S = float(os.environ.get("TUMORBENCH_LEASE_STALE_S", 300))
HEARTBEAT_S = float(os.environ.get("TUMORBENCH_LEASE_HEARTBEAT_S", 30))
LEASE_NAME = ".lease"
PROGRESS_NAME = ".lease.progress"
_MISSING_GRACE_S = 2.0  # a lease file absent this long (not a rename in flight) is gone
log = logging.getLogger(__name__)


class LeaseLost(RuntimeError):
    """This process no longer holds its cell's lease (another process took the cell over)."""


def slurm_job() -> str | None:
    """This process's Slurm job (array job_task), None outside Slurm."""
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def _first_line(path: str) -> str | None:
    try:
        return Path(path).read_text().strip() or None
    except OSError:
        return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def identity() -> dict:
    """Who this process is, as written into a lease (``token`` makes each lease unique)."""
    return {"host": socket.gethostname(), "boot": _first_line("/proc/sys/kernel/random/boot_id"),
            "pidns": _pid_namespace(), "pid": os.getpid(), "job": slurm_job(),
            "step": os.environ.get("SLURM_STEP_ID"), "restart": int(os.environ.get("SLURM_RESTART_COUNT") or 0),
            "token": uuid.uuid4().hex}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_epoch(folder: str | os.PathLike) -> tuple[int, int | None] | None:
    """(epoch, epochs) the live holder of the cell in ``folder`` last noted; None when nobody holds
    it, it has noted no epoch yet, or the note is an earlier holder's (two small reads, no lock)."""
    try:
        holder = json.loads((Path(folder) / LEASE_NAME).read_text() or "{}")
        note = json.loads((Path(folder) / PROGRESS_NAME).read_text())
        return (int(note["epoch"]), note.get("epochs")) if note.get("token") == holder.get("token") else None
    except (OSError, ValueError, KeyError, TypeError):  # absent, or being replaced right now
        return None


def describe(holder: dict) -> str:
    job = holder.get("job")
    return (f"{holder.get('host')} pid {holder.get('pid')}"
            + (f" Slurm job {job} step {holder.get('step')} restart {holder.get('restart', 0)}" if job else ""))


def takeover_reason(me: dict, other: dict, age: float, stale_s: float) -> str | None:
    """Why ``me`` may take over ``other``'s lease (heartbeat ``age`` s old), None if it may not."""
    if age > stale_s:
        return f"heartbeat {age:.0f} s old"
    if me["job"] is not None and other.get("job") == me["job"]:
        if isinstance(other.get("restart"), int) and other["restart"] < me["restart"]:
            return f"restart {other['restart']} of this Slurm job, superseded by restart {me['restart']}"
    if other.get("host") != me["host"] or not other.get("boot") or not me["boot"]:
        return None  # another host: judged by its heartbeat alone
    if other["boot"] != me["boot"]:
        return "its host rebooted since"
    if other.get("pidns") and other["pidns"] == me["pidns"] and isinstance(other.get("pid"), int) \
            and not _pid_alive(other["pid"]):
        return f"pid {other['pid']} is gone"
    return None  # alive, or in another PID namespace (judged by its heartbeat alone)


class CellLease:
    """``acquire()`` -> bool; ``check()`` before writes; ``release()``; ``holder`` describes the
    other owner after a refusal."""

    def __init__(self, folder: str | os.PathLike, *, stale_s: float = STALE_S, heartbeat_s: float = HEARTBEAT_S):
        self.path = Path(folder) / LEASE_NAME
        self.stale_s, self.heartbeat_s = stale_s, heartbeat_s
        self.me = identity()
        self.holder: str = ""
        self.lost: str | None = None  # why the lease was lost (set by the heartbeat or check)
        self._confirmed = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            if self._create():
                self._confirmed = time.monotonic()
                self._start_heartbeat()
                return True
            other, age = self._read_with_age()
            if other is None:  # vanished meanwhile (released): try again
                continue
            reason = takeover_reason(self.me, other, age, self.stale_s)
            if reason is None:
                self.holder = f"{describe(other)}, heartbeat {age:.0f} s ago"
                return False
            log.warning("taking over the lease of %s from %s: %s", self.path.parent, describe(other), reason)
            self._move_aside(other)
        return False

    def check(self) -> None:
        """Raise `LeaseLost` unless this process still holds the lease (its token is in the file).

        A file briefly absent (another process's rename in flight) is waited for; unreadable
        (ESTALE, EIO) counts as still held while the last confirmation is younger than half
        ``stale_s`` (nobody may take it over before ``stale_s``)."""
        if self.lost:
            raise LeaseLost(self.lost)
        delay, waited = 0.05, 0.0
        while True:
            try:
                holder = self._read()
                break
            except FileNotFoundError:
                if waited >= _MISSING_GRACE_S:
                    holder = None
                    break
            except OSError as exc:
                if time.monotonic() - self._confirmed < self.stale_s / 2:
                    log.warning("cannot read the lease of %s (%s); still held", self.path.parent, exc)
                    return
                raise LeaseLost(f"lease of {self.path.parent} unreadable for {self.stale_s / 2:.0f} s ({exc})") from exc
            time.sleep(delay)
            waited, delay = waited + delay, delay * 2
        self._confirm(holder)

    def note_epoch(self, epoch: int, epochs: int | None) -> None:
        """Note how far training got (`read_epoch`); a failed write is logged, never raised."""
        from tumorbench_common.io import write_json_atomic

        try:
            write_json_atomic(self.path.with_name(PROGRESS_NAME), {"epoch": int(epoch), "epochs": epochs,
                                                                   "token": self.me["token"]})
        except OSError as exc:
            log.warning("cannot note the epoch of %s (%s)", self.path.parent, exc)

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            other = self._read()
        except OSError:
            return
        if other.get("token") == self.me["token"]:
            self.path.with_name(PROGRESS_NAME).unlink(missing_ok=True)
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

    def _read(self) -> dict:
        """The lease's content (raises FileNotFoundError / OSError)."""
        try:
            return json.loads(self.path.read_text() or "{}")
        except ValueError:  # being written right now: treat as fresh and foreign
            return {"host": "?", "pid": "?", "token": "?"}

    def _read_with_age(self) -> tuple[dict | None, float]:
        """(content, heartbeat age in s on the filesystem's clock); (None, 0) when absent."""
        try:
            with open(self.path) as fh:
                text, mtime = fh.read(), os.fstat(fh.fileno()).st_mtime
        except FileNotFoundError:
            return None, 0.0
        try:
            content = json.loads(text or "{}")
        except ValueError:  # being written right now: treat as fresh and foreign
            return {"host": "?", "pid": "?", "token": "?"}, 0.0
        return content, self._filesystem_now() - mtime

    def _filesystem_now(self) -> float:
        """'Now' on the clock that stamps the lease's mtime: touch a probe file next to it (on
        NFS a utime without times is set by the server) and read its mtime back."""
        probe = self.path.with_name(f"{LEASE_NAME}.clock-{self.me['token']}")
        try:
            probe.touch()
            os.utime(probe)
            return probe.stat().st_mtime
        finally:
            probe.unlink(missing_ok=True)

    def _confirm(self, holder: dict | None) -> None:
        if holder is None or holder.get("token") != self.me["token"]:
            who = "nobody (the file is gone)" if holder is None else describe(holder)
            self.lost = f"lease of {self.path.parent} was taken over; it is now held by {who}"
            raise LeaseLost(self.lost)
        self._confirmed = time.monotonic()

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

    def _beat(self) -> None:
        """One heartbeat: confirm the token (a lost lease is never refreshed), then touch it."""
        self._confirm(self._read())
        os.utime(self.path)

    def _beat_loop(self) -> None:
        failures = 0
        while not self._stop.wait(min(self.heartbeat_s, 0.1 * 2**failures) if failures else self.heartbeat_s):
            try:
                self._beat()
            except LeaseLost:  # said once, by whoever calls check() next
                return
            except OSError as exc:  # ESTALE/EIO, or the file renamed by another process: retry
                failures += 1
                log.warning("lease heartbeat of %s failed (%s: %s); retrying", self.path.parent,
                            type(exc).__name__, exc)
                continue
            if failures:
                log.warning("lease heartbeat of %s works again after %d failures", self.path.parent, failures)
            failures = 0

    def _start_heartbeat(self) -> None:
        self._thread = threading.Thread(target=self._beat_loop, name="cell-lease-heartbeat", daemon=True)
        self._thread.start()
