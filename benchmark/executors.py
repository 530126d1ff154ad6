"""Where cells run: in this process, in N local worker processes, or as submitit jobs.

Every executor calls the same `run_cell_job(task, stages)`; cells already FINISHED in
MLflow are answered here without dispatching anything. A progress bar counts cells
done / running / failed / left and, when cells run in other processes (pool workers, submitit
jobs), shows each running cell's epoch from its lease's progress note (`benchmark.lease.read_epoch`). Slurm specifics (sbatch options, requeue on time limit /
preemption, jobs that vanish, Ctrl-C) are in `benchmark.slurm`.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from benchmark.errors import InputError
from benchmark.slurm import submitit_executor
from tumorbench_common.mlflow_tags import CELL_HASH, KIND, read_tag

EXECUTORS = ("local", "slurm", "submitit-local")
POLL_S = 1.0  # how often the cells bar re-reads the running cells' epochs
SHOWN_CELLS = 4  # running cells named in the bar; the others are counted
WORKER_GPU_ENV = "TUMORBENCH_WORKER_GPU"  # the physical GPU a local worker process was given


def run_cell_job(task, stages=None, progress: bool = False):
    """Entry of a worker process / Slurm job: run one cell, never raise for cell errors (an
    unreachable tracking server included: the cell fails, the grid goes on; see `_failure`).

    Inner progress bars (training, inference) only when cells run one at a time here. In a GPU
    worker (`_init_worker`) the cell runs on ``cuda:0``, the one GPU that worker sees.
    """
    import dataclasses

    from benchmark.cell_run import run_cell

    if os.environ.get(WORKER_GPU_ENV) is not None and task.device.startswith("cuda"):
        task = dataclasses.replace(task, device="cuda:0")
    try:
        return run_cell(task, stages, progress=progress)
    except Exception as exc:  # noqa: BLE001  (isolation: one cell's error never ends the grid)
        return _failure(task, exc)


class CellJob:
    """`run_cell_job` as a submitit checkpointable callable: on Slurm's time-limit / preemption
    signal submitit calls `checkpoint` and requeues the job with the same arguments; the requeued
    job takes its cell's lease back, reopens the same MLflow run and resumes from ``last.pt``
    (nothing else needs saving: the trainer checkpoints every epoch)."""

    def __call__(self, task, stages=None):
        return run_cell_job(task, stages)

    def checkpoint(self, *args, **kwargs):
        import submitit

        return submitit.helpers.DelayedSubmission(CellJob(), *args, **kwargs)


def execute(tasks: Sequence, *, executor: str, max_parallel: int, stages, slurm: Mapping[str, Any],
            folder: Path, progress: bool = True, gpus: Sequence[str] | None = None) -> list:
    """Run ``tasks`` (CellTask) and return their CellOutcome in the same order.

    ``gpus`` (local executor): one worker process per GPU id, each seeing only its own GPU.
    """
    if executor not in EXECUTORS:
        raise InputError(f"--executor: {executor!r}; expected one of {list(EXECUTORS)}")
    if max_parallel < 1:
        raise InputError(f"--max-parallel: must be >= 1, got {max_parallel}")
    outcomes: list = [None] * len(tasks)
    todo = _skip_finished(tasks, outcomes)
    view = _Progress(len(tasks), sum(o is not None for o in outcomes), progress)
    if executor == "local" and max_parallel == 1 and not gpus:
        for i in todo:
            view.started(tasks[i])
            outcomes[i] = run_cell_job(tasks[i], stages, progress=progress)
            view.ended(tasks[i], outcomes[i].status)
    elif executor == "local":
        _run_pool(tasks, longest_first(tasks, todo), outcomes, stages, len(gpus or ()) or max_parallel, view, gpus)
    else:
        _run_submitit(tasks, todo, outcomes, stages, slurm, folder, max_parallel,
                      cluster="local" if executor == "submitit-local" else "slurm", view=view)
    view.close()
    return outcomes


def longest_first(tasks: Sequence, todo: Sequence[int]) -> list[int]:
    """``todo`` ordered longest expected cell first, so that no worker of a pool idles at the end
    while one long cell runs (LPT scheduling): more training iterations first and, among equal
    ones, the cells that synthesize tumors on the fly (a generator configured) before those that
    do not, and among those the ones that sample a trained model (a ``checkpoint``: DiffTumor's
    diffusion sampler, 2.3 CPU-s an epoch of the demo against Hu's 1.0, docs/performance.md)
    first; otherwise grid order. Outcomes stay in task order whatever the start order."""
    def expected_cost(i: int) -> tuple[int, int]:
        hp, generator = tasks[i].cell.hp(), dict(tasks[i].cell.generator)
        iterations = int(hp.get("epochs") or 0) * int(hp.get("iters_per_epoch") or 0)
        return -iterations, -(bool(generator) + ("checkpoint" in generator))

    return sorted(todo, key=expected_cost)


def _skip_finished(tasks: Sequence, outcomes: list) -> list[int]:
    """Fill outcomes of cells whose MLflow run FINISHED (one search per experiment)."""
    from benchmark import tracking
    from benchmark.cell_run import CellOutcome

    finished: dict[tuple[str, str, str], Any] = {}
    for uri, exp in {(t.tracking_uri, t.experiment_id) for t in tasks}:
        for run in tracking.finished_runs(tracking.client_for(uri), exp):
            key = (uri, read_tag(run.data.tags, CELL_HASH, ""), run.data.tags.get(KIND, ""))
            finished.setdefault(key, run)
    todo = []
    for i, task in enumerate(tasks):
        run = finished.get((task.tracking_uri, task.cell.hash, task.kind))
        if run is None:
            todo.append(i)
        else:
            outcomes[i] = CellOutcome(task.cell, "skipped", run.info.run_id, str(task.results_dir),
                                      dict(run.data.metrics))
    return todo


def limit_torch_threads(threads: int) -> None:
    """Worker initializer: share the cores between the workers instead of each taking all of
    them (N workers x all-core OpenMP pools oversubscribe the CPU and run slower than one)."""
    import torch

    torch.set_num_threads(threads)


def _init_worker(threads: int, gpu_ids=None) -> None:
    """Worker initializer: take one GPU id off the queue and make it the only GPU this process
    sees. It must run before torch initialises CUDA (which reads CUDA_VISIBLE_DEVICES once):
    a spawned worker has not touched CUDA yet, and the pool starts exactly one worker per GPU."""
    if gpu_ids is not None:
        gpu = gpu_ids.get(timeout=60)
        os.environ["CUDA_VISIBLE_DEVICES"] = os.environ[WORKER_GPU_ENV] = gpu
    limit_torch_threads(threads)


def _run_pool(tasks, todo, outcomes, stages, max_parallel: int, view, gpus: Sequence[str] | None = None) -> None:
    """N spawned worker processes (spawn: torch and forked threads do not mix); with ``gpus``
    one per GPU, so at most one cell per GPU at a time."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // max_parallel)
    gpu_ids = None
    if gpus:
        gpu_ids = ctx.Queue()
        for gpu in gpus:
            gpu_ids.put(str(gpu))
    with ProcessPoolExecutor(max_workers=max_parallel, mp_context=ctx, initializer=_init_worker,
                             initargs=(threads, gpu_ids)) as pool:
        pending = {}
        for i in todo:
            pending[pool.submit(run_cell_job, tasks[i], stages)] = i
            view.started(tasks[i])
        while pending:
            finished, _ = wait(pending, timeout=POLL_S, return_when=FIRST_COMPLETED)
            for future in finished:
                i = pending.pop(future)
                outcomes[i] = _result_or_failure(tasks[i], future.result)
                view.ended(tasks[i], outcomes[i].status)
            view.poll()


def _run_submitit(tasks, todo, outcomes, stages, slurm: Mapping[str, Any], folder: Path,
                  max_parallel: int, *, cluster: str, view) -> None:
    """Slurm: one job array (parallelism from [slurm] array_parallelism). Local cluster:
    submitit starts every job at once, so at most ``max_parallel`` are kept in flight.
    Ctrl-C cancels every job still queued or running and says so."""
    from benchmark.slurm import cancel_jobs

    ex = submitit_executor(folder, slurm, cluster)
    running: dict = {}
    try:
        if cluster == "slurm":
            jobs = ex.map_array(CellJob(), [tasks[i] for i in todo], [stages] * len(todo))
            running.update(zip(jobs, todo))
            _collect(running, tasks, outcomes, view, started_all=True, slurm=True)
            return
        queue = list(todo)
        while queue or running:
            while queue and len(running) < max_parallel:
                i = queue.pop(0)
                running[ex.submit(run_cell_job, tasks[i], stages)] = i
                view.started(tasks[i])
            _collect(running, tasks, outcomes, view, started_all=False, first_only=True)
    except KeyboardInterrupt:
        cancel_jobs(list(running), cluster)
        raise


def _collect(jobs: dict, tasks, outcomes, view, *, started_all: bool, first_only: bool = False,
             slurm: bool = False) -> None:
    """Poll submitit jobs; record outcomes of finished ones (all, or the first to end). On Slurm a
    job is done when its result file is there (submitit's sacct-based state may call a task that
    is being requeued done); one that Slurm says ended without a result (killed, node lost) is
    recorded as failed by `benchmark.slurm.QueueWatch` instead of being waited for forever."""
    from benchmark.slurm import QueueWatch

    if started_all:
        for i in jobs.values():
            view.started(tasks[i])
    watch = QueueWatch() if slurm else None
    while jobs:
        done = [job for job in jobs if job.done() and (not slurm or job.paths.result_pickle.exists())]
        for job in done:
            i = jobs.pop(job)
            outcomes[i] = _result_or_failure(tasks[i], job.result)
            view.ended(tasks[i], outcomes[i].status)
        for job, why in (watch.vanished(jobs) if watch else []):
            i = jobs.pop(job)
            outcomes[i] = _vanished(tasks[i], job, why)
            view.ended(tasks[i], "failed")
        view.poll()
        if done and first_only:
            return
        if not done:
            time.sleep(0.5)


def _vanished(task, job, why: str):
    from benchmark.cell_run import CellOutcome

    return CellOutcome(task.cell, "failed", None, str(task.results_dir),
                       error=f"Slurm job {job.job_id} {why} without a result (log: {job.paths.stdout}); "
                             "its MLflow run stays RUNNING and the next invocation resumes it")


def _result_or_failure(task, get_result):
    """A worker that died (killed, out of memory, Slurm timeout) becomes a failed outcome;
    its MLflow run stays RUNNING and the next invocation resumes it."""
    try:
        return get_result()
    except Exception as exc:  # BrokenProcessPool, submitit.core.utils.FailedJobError, ...
        return _failure(task, exc, "worker died: ")


def _failure(task, exc: BaseException, prefix: str = ""):
    from benchmark.cell_run import CellOutcome, one_line

    return CellOutcome(task.cell, "failed", None, str(task.results_dir), error=prefix + one_line(exc)[-800:])


class _Progress:
    """tqdm bar over cells: done / running / failed counts in its postfix, then each running cell's
    epoch (``liver·unet·hu·f0 e12/50``) as its lease notes it (`poll`); a running cell that has
    noted no epoch yet (queued Slurm job, preprocessing) is counted but not named."""

    def __init__(self, total: int, skipped: int, enabled: bool):
        from tqdm.auto import tqdm

        self.counts = {"done": 0, "skipped": skipped, "failed": 0, "busy": 0, "running": 0}
        self.bar = tqdm(total=total, initial=skipped, desc="cells", unit="cell", disable=not enabled)
        self.running: dict[int, Any] = {}  # id(task) -> task
        self.epochs: dict[int, str] = {}  # id(task) -> "e12/50"
        self._polled = 0.0
        self._show()

    def started(self, task) -> None:
        self.counts["running"] += 1
        self.running[id(task)] = task
        self._show()

    def ended(self, task, status: str) -> None:
        self.counts["running"] -= 1
        self.running.pop(id(task), None)
        self.epochs.pop(id(task), None)
        self.counts[status if status in ("failed", "skipped", "busy") else "done"] += 1
        self.bar.update(1)
        self._show()

    def poll(self) -> None:
        """Re-read the running cells' epochs, at most every `POLL_S` (two small files per cell)."""
        from benchmark.lease import read_epoch

        if self.bar.disable or time.monotonic() - self._polled < POLL_S:
            return
        self._polled = time.monotonic()
        for key, task in self.running.items():
            note = read_epoch(task.results_dir)
            if note is not None:
                self.epochs[key] = f"e{note[0]}" + (f"/{note[1]}" if note[1] else "")
        self._show()

    def _show(self) -> None:
        left = self.bar.total - sum(v for k, v in self.counts.items() if k != "running") - self.counts["running"]
        text = ", ".join(f"{k}={v}" for k, v in {**self.counts, "left": left}.items())
        named = [f"{self.running[k].cell.run_name} {e}" for k, e in self.epochs.items() if k in self.running]
        if named:
            more = len(named) - SHOWN_CELLS
            text += " | " + ", ".join(named[:SHOWN_CELLS]) + (f" +{more} more" if more > 0 else "")
        self.bar.set_postfix_str(text, refresh=True)

    def close(self) -> None:
        self.bar.close()
