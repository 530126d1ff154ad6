"""Slurm through submitit: sbatch options from the grid's [slurm] table, jobs that vanish,
cancelling on Ctrl-C, and the job's log path as an MLflow tag.

Requeue on time limit / preemption is submitit's: each job gets ``--signal=USR2@<signal_delay_s>``;
on that signal submitit calls ``benchmark.executors.CellJob.checkpoint`` and ``scontrol requeue``s
the job (at most ``max_num_timeout`` times for time limits; preemptions do not count).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from benchmark.errors import InputError

# [slurm] fields passed to submitit as slurm_<name> when set (see grids/paper.toml)
_OPTIONAL = ("partition", "account", "constraint", "qos", "gres")


def _check(slurm: Mapping[str, Any]) -> None:
    """What the grid's schema (`benchmark.grid_schema.SLURM_SCHEMA`, checked at load) cannot say:
    the values of the sbatch options table."""
    extra = slurm.get("additional_parameters") or {}
    if not all(isinstance(v, (str, int, float, bool)) for v in extra.values()):
        raise InputError(f"grid [slurm]: field 'additional_parameters' is {extra!r}; expected a table of sbatch "
                         'options, e.g. {exclude = "node7", mail_type = "FAIL"}')


def submitit_executor(folder: Path, slurm: Mapping[str, Any], cluster: str):
    """A submitit AutoExecutor configured from the grid's [slurm] table."""
    import submitit

    _check(slurm)
    extra = {"slurm_max_num_timeout": int(slurm.get("max_num_timeout", 3))} if cluster == "slurm" else {}
    ex = submitit.AutoExecutor(folder=str(folder), cluster=cluster, **extra)
    params: dict[str, Any] = {"timeout_min": int(slurm["time_min"]), "mem_gb": slurm["mem_gb"],
                              "cpus_per_task": int(slurm["cpus_per_task"]), "name": "tumorbench"}
    if cluster == "slurm":
        params.update(gpus_per_node=int(slurm["gpus_per_node"]),
                      slurm_array_parallelism=int(slurm["array_parallelism"]),
                      slurm_signal_delay_s=int(slurm.get("signal_delay_s", 120)))
        params.update({f"slurm_{k}": slurm[k] for k in _OPTIONAL if slurm.get(k)})
        if slurm.get("additional_parameters"):
            params["slurm_additional_parameters"] = dict(slurm["additional_parameters"])
        if slurm.get("setup"):
            params["slurm_setup"] = list(slurm["setup"])
    ex.update_parameters(**params)
    return ex


SERVER_RECIPE = "docs/runner.md, section 'Many nodes, one MLflow server'"


def is_local_store(url: str) -> bool:
    """A store kept in files of one machine: sqlite (MLflow or Optuna), ``file:`` or a bare path."""
    from urllib.parse import urlparse

    scheme = urlparse(url).scheme.lower()
    return scheme.startswith("sqlite") or scheme == "file" or (scheme == "" and url not in ("databricks", "uc"))


def refuse_local_stores(stores: Mapping[str, str], *, allowed: bool, where: str) -> None:
    """InputError when many Slurm tasks would write one sqlite/file store (sqlite's locking over
    NFS/Lustre is unreliable: lost writes, "database is locked", a corrupt file), unless the
    user said they want it (``--allow-local-store``: one node, a local disk)."""
    local = {what: url for what, url in stores.items() if url and is_local_store(url)}
    if allowed or not local:
        return
    named = "; ".join(f"{what} {url!r}" for what, url in local.items())
    raise InputError(f"{where}: {named} is a local file store that every Slurm task would write at once "
                     f"(sqlite over a shared filesystem loses writes or corrupts); run an MLflow server and a "
                     f"database server as in {SERVER_RECIPE}, or pass --allow-local-store if every task runs "
                     "on this machine's local disk")


# squeue states of a job that ended (listed by `squeue -t all` for MinJobAge after the end)
ENDED_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                          "BOOT_FAIL", "DEADLINE", "PREEMPTED"})


class QueueWatch:
    """Finds submitit jobs that Slurm says ended without writing a result.

    ``squeue -r -t all`` is asked at most every ``every_s`` seconds (default 15, env
    ``TUMORBENCH_SQUEUE_EVERY_S``); ended jobs stay listed there for MinJobAge (default 300 s),
    so no ``sacct`` is needed. A job is failed only when
    - squeue lists it in an ended state (COMPLETED, FAILED, CANCELLED, TIMEOUT, NODE_FAIL, ...)
      and still has no result ``grace_s`` later (default 4 polls: a result file on NFS may
      arrive late), or
    - it is absent from squeue for ``absent_s`` (default 600 s: purged after MinJobAge before we
      looked, or a controller that lost it).
    A requeued task is never given up while listed: PENDING (``BeginTime``: Slurm lets it start
    again after cred_expire, 120 s by default), COMPLETING, RUNNING... A task whose submitit log
    says it requeued itself ("Requeued job" after its last start) gets ``absent_s`` even when
    listed as ended (a controller that shows the old run's end before the requeue).
    """

    def __init__(self, every_s: float | None = None, grace_s: float | None = None, absent_s: float = 600.0):
        every_s = float(os.environ.get("TUMORBENCH_SQUEUE_EVERY_S", 15)) if every_s is None else every_s
        self.every_s, self.absent_s = every_s, absent_s
        self.grace_s = 4 * every_s if grace_s is None else grace_s
        self._last = float("-inf")  # the first call asks
        self._since: dict[str, float] = {}  # job id -> when it was first seen ended or absent
        self.squeue = shutil.which("squeue")

    def vanished(self, jobs: Iterable) -> list[tuple[Any, str]]:
        jobs = list(jobs)
        now = time.monotonic()
        if not jobs or self.squeue is None or now - self._last < self.every_s:
            return []
        self._last = now
        states = self._states({str(job.job_id).split("_")[0] for job in jobs})
        if states is None:
            return []
        gone = []
        for job in jobs:
            jid = str(job.job_id)
            state = states.get(jid)
            if job.paths.result_pickle.exists() or (state is not None and state not in ENDED_STATES):
                self._since.pop(jid, None)
                continue
            waited = now - self._since.setdefault(jid, now)
            limit = self.absent_s if state is None or _requeued(job) else self.grace_s
            if waited >= limit:
                gone.append((job, f"ended ({state})" if state else f"left the Slurm queue for {waited:.0f} s"))
        return gone

    def _states(self, array_ids: set[str]) -> dict[str, str] | None:
        """job id -> Slurm state of every task of these arrays (None: squeue could not answer)."""
        try:
            out = subprocess.run([self.squeue, "-h", "-r", "-t", "all", "-o", "%i %T",
                                  "-j", ",".join(sorted(array_ids))],
                                 capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return None
        if out.returncode != 0 and "Invalid job id" not in out.stderr:
            return None  # controller unreachable: say nothing rather than fail live jobs
        return dict(line.split()[:2] for line in out.stdout.splitlines() if len(line.split()) >= 2)


def _requeued(job) -> bool:
    """submitit's log says this task requeued itself and has not started again since."""
    try:
        with open(job.paths.stdout, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 65536))
            tail = log.read().decode(errors="replace")
    except OSError:
        return False
    return tail.rfind("Requeued job") > tail.rfind("Starting with JobEnvironment")


def cancel_jobs(jobs: list, cluster: str) -> None:
    """Cancel every job (Ctrl-C on the driver) and say which."""
    ids = [str(job.job_id) for job in jobs]
    for job in jobs:
        try:
            job.cancel(check=False)
        except Exception as exc:  # scancel missing or failing: report, keep cancelling the others
            print(f"tumorbench: could not cancel job {job.job_id}: {exc}", file=sys.stderr)
    if ids:
        arrays = sorted({i.split("_")[0] for i in ids})
        what = f"Slurm job array {', '.join(arrays)}" if cluster == "slurm" else "submitit jobs"
        print(f"tumorbench: interrupted: cancelled {len(ids)} job(s) of {what}; their MLflow runs stay "
              "RUNNING and the next `tumorbench run` resumes them", file=sys.stderr, flush=True)


def job_tags() -> dict[str, str]:
    """``tumorbench.slurm_job_id`` and ``tumorbench.slurm_log`` (submitit's stdout file) inside a Slurm job, else {}."""
    from tumorbench_common import mlflow_tags as T

    if os.environ.get("SUBMITIT_EXECUTOR") != "slurm" or "SLURM_JOB_ID" not in os.environ:
        return {}
    try:
        import submitit

        env = submitit.JobEnvironment()
        return {T.SLURM_JOB_ID: str(env.job_id), T.SLURM_LOG: str(env.paths.stdout)}
    except Exception:  # not a submitit job after all
        return {T.SLURM_JOB_ID: os.environ["SLURM_JOB_ID"]}
