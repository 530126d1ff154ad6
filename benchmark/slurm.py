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
    def fail(field: str, expected: str) -> None:
        raise InputError(f"grid [slurm]: field '{field}' is {slurm.get(field)!r}; expected {expected}")

    for key in _OPTIONAL:
        if slurm.get(key) is not None and not isinstance(slurm[key], str):
            fail(key, "a string")
    extra = slurm.get("additional_parameters") or {}
    if not isinstance(extra, dict) or not all(isinstance(v, (str, int, float, bool)) for v in extra.values()):
        fail("additional_parameters", 'a table of sbatch options, e.g. {exclude = "node7", mail_type = "FAIL"}')
    setup = slurm.get("setup") or []
    if not isinstance(setup, list) or not all(isinstance(line, str) for line in setup):
        fail("setup", 'a list of shell lines, e.g. ["module load cuda/12.4", "source .venv/bin/activate"]')
    for key in ("time_min", "cpus_per_task", "gpus_per_node", "array_parallelism", "signal_delay_s",
                "max_num_timeout"):
        if key in slurm and (not isinstance(slurm[key], int) or isinstance(slurm[key], bool) or slurm[key] < 0):
            fail(key, "an int >= 0")


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


class QueueWatch:
    """Finds submitit jobs that left the Slurm queue without writing a result.

    ``squeue`` is asked at most every ``every_s`` seconds (default 15, env
    ``TUMORBENCH_SQUEUE_EVERY_S``); a job absent from two answers in a row
    (a requeued job is listed again as PENDING) whose result file never appeared has vanished.
    """

    def __init__(self, every_s: float | None = None):
        every_s = float(os.environ.get("TUMORBENCH_SQUEUE_EVERY_S", 15)) if every_s is None else every_s
        self.every_s, self._last, self._missing = every_s, 0.0, set()
        self.squeue = shutil.which("squeue")

    def vanished(self, jobs: Iterable) -> list[tuple[Any, str]]:
        jobs = list(jobs)
        if not jobs or self.squeue is None or time.monotonic() - self._last < self.every_s:
            return []
        self._last = time.monotonic()
        queued = self._queued({str(job.job_id).split("_")[0] for job in jobs})
        if queued is None:
            return []
        gone = []
        for job in jobs:
            jid = str(job.job_id)
            if jid in queued or job.paths.result_pickle.exists():
                self._missing.discard(jid)
            elif jid in self._missing:
                gone.append((job, "left the Slurm queue"))
            else:
                self._missing.add(jid)
        return gone

    def _queued(self, array_ids: set[str]) -> set[str] | None:
        try:
            out = subprocess.run([self.squeue, "-h", "-r", "-o", "%i", "-j", ",".join(sorted(array_ids))],
                                 capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return None
        if out.returncode != 0 and "Invalid job id" not in out.stderr:
            return None  # controller unreachable: say nothing rather than fail live jobs
        return {line.strip() for line in out.stdout.splitlines() if line.strip()}


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
    """``slurm_job_id`` and ``slurm_log`` (submitit's stdout file) inside a Slurm job, else {}."""
    if os.environ.get("SUBMITIT_EXECUTOR") != "slurm" or "SLURM_JOB_ID" not in os.environ:
        return {}
    try:
        import submitit

        env = submitit.JobEnvironment()
        return {"slurm_job_id": str(env.job_id), "slurm_log": str(env.paths.stdout)}
    except Exception:  # not a submitit job after all
        return {"slurm_job_id": os.environ["SLURM_JOB_ID"]}
