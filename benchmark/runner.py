"""Run a grid: expand it into cells, skip finished ones, execute the rest, track in MLflow.

Idempotent and resumable, keyed by the cell hash (MLflow tag ``cell_hash``):
- a cell whose run FINISHED is skipped (no new run);
- a cell whose run is RUNNING/KILLED/FAILED (process killed, node lost, error) is reopened
  in the SAME run and its training resumes from ``train/last.pt``;
- a failing cell is recorded FAILED (tag ``error`` + artifact ``error.txt``) and the grid
  goes on.
"""
from __future__ import annotations

import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from benchmark.cell import Cell, cells_from_grid, parse_only, print_cell_table, select
from benchmark.errors import InputError
from benchmark.grid import EVAL_DEFAULTS, Grid, load_grid
from benchmark.io import write_json_atomic
from benchmark import tracking


@dataclass(frozen=True)
class CellTask:
    """Everything a worker (process, Slurm job) needs to run one cell. Picklable."""

    cell: Cell
    dataset_dir: str
    eval_datasets: tuple[tuple[str, str], ...]  # (organ, dataset dir), own organ first
    results_root: str
    device: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str | None = None
    evaluate: tuple[tuple[str, Any], ...] = ()
    generator_checkpoint: str | None = None
    kind: str = "cell"
    run_name: str | None = None

    @property
    def results_dir(self) -> Path:
        return Path(self.results_root) / self.cell.relative_dir()

    def eval_targets(self) -> tuple[tuple[str, str], ...]:
        return self.eval_datasets

    def setting(self, key: str) -> Any:
        return dict(self.evaluate).get(key, EVAL_DEFAULTS[key])


@dataclass(frozen=True)
class CellOutcome:
    """status: finished | skipped | failed | stopped (pruned / interrupted) | busy (another
    process holds the cell's lease)."""

    cell: Cell
    status: str
    run_id: str | None
    results_dir: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    error: str | None = None


def run_cell(task: CellTask, stages=None, **kwargs) -> CellOutcome:
    """`_run_cell` under the cell's lease (`benchmark.lease`): a cell another process is training
    is not touched; its outcome is ``busy`` and a line on stderr says who holds it."""
    from benchmark.lease import CellLease

    lease = CellLease(task.results_dir)
    if not lease.acquire():
        print(f"tumorbench: cell {task.cell.run_name} ({task.cell.hash}) is being trained by "
              f"{lease.holder}; skipped", file=sys.stderr, flush=True)
        return CellOutcome(task.cell, "busy", None, str(task.results_dir), error=f"leased by {lease.holder}")
    try:
        return _run_cell(task, stages, **kwargs)
    finally:
        lease.release()


def _run_cell(task: CellTask, stages=None, *, report=None, progress: bool = True,
              train_only: bool = False, stop_exceptions: tuple = (),
              raise_errors: bool = False) -> CellOutcome:
    """Run one cell inside its MLflow run (new, or the unfinished one of the same hash).

    Args:
        report: ``report(epoch, val_tumor_dsc)`` passed to the trainer (Optuna pruning).
        train_only: stop after training (tuning objective: validation DSC).
        stop_exceptions: exceptions that end the run as KILLED with tag ``stopped`` and
            propagate (``optuna.TrialPruned``).
        raise_errors: re-raise other errors after recording FAILED (default: return them).
    """
    from benchmark.stages import real_stages, run_pipeline

    stages = stages or real_stages()
    client = tracking.client_for(task.tracking_uri)
    done = tracking.find_run(client, task.experiment_id, task.cell.hash, task.kind)
    if done is not None and done.info.status == "FINISHED":
        return CellOutcome(task.cell, "skipped", done.info.run_id, str(task.results_dir), dict(done.data.metrics))
    run_id, resumed = tracking.open_cell_run(
        client, task.experiment_id, cell=task.cell, kind=task.kind, parent_run_id=task.parent_run_id,
        run_name=task.run_name, note=_note(task), tags=_tags(task))
    buffer = tracking.MetricBuffer(client, run_id)
    try:
        summaries = run_pipeline(task, stages, log_metrics=buffer.log_epoch, report=report,
                                 progress=progress, train_only=train_only)
        metrics = _log_results(client, buffer, run_id, task, summaries)
    except stop_exceptions as exc:
        _end(client, buffer, run_id, "KILLED", {"stopped": type(exc).__name__})
        raise
    except KeyboardInterrupt:
        _end(client, buffer, run_id, "KILLED", {"stopped": "KeyboardInterrupt"})
        raise
    except Exception as exc:
        _record_failure(client, buffer, run_id, exc)
        if raise_errors:
            raise
        return CellOutcome(task.cell, "failed", run_id, str(task.results_dir), error=_one_line(exc))
    _end(client, buffer, run_id, "FINISHED", {})
    write_json_atomic(task.results_dir / "DONE", {"run_id": run_id, "resumed": resumed})
    return CellOutcome(task.cell, "finished", run_id, str(task.results_dir), metrics)


def _tags(task: CellTask) -> dict[str, str]:
    cell = task.cell
    return {"organ": cell.organ, "backbone": cell.backbone, "fold": str(cell.fold),
            "regime": cell.regime, "synth_source": cell.synth_source, "seed": str(cell.seed),
            "preset": cell.preset, "results_dir": str(task.results_dir),
            "dataset_dir": str(Path(task.dataset_dir).resolve()), "git_commit": tracking.git_commit(),
            "device": task.device}


def _note(task: CellTask) -> str:
    cell = task.cell
    others = [o for o, _ in task.eval_datasets if o != cell.organ]
    source = f" from the {cell.synth_source} generator (healthy CTs only)" if cell.cross_organ else ""
    return (f"{cell.backbone} ({cell.preset}) trained on {cell.organ} fold {cell.fold} with "
            f"{cell.regime} tumors{source}, seed {cell.seed}; checkpoint chosen on the inner validation split, "
            f"evaluated on the test fold"
            + (f" and cross-organ on {', '.join(others)}" if others else "")
            + f". Results: `{task.results_dir}`.")


def _log_results(client, buffer, run_id: str, task: CellTask, summaries: Mapping[str, dict]) -> dict[str, float]:
    """Final metrics (one request) and the result files as artifacts."""
    buffer.flush()
    metrics = _final_metrics(client, run_id, task, summaries)
    buffer.log(metrics)
    buffer.flush()
    _log_artifacts(client, run_id, task.results_dir)
    return metrics


def _final_metrics(client, run_id: str, task: CellTask, summaries: Mapping[str, dict]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    history = client.get_metric_history(run_id, "val_tumor_dsc")
    if history:
        metrics["best_val_tumor_dsc"] = max(m.value for m in history)
    for organ, summary in summaries.items():
        if organ == task.cell.organ:
            metrics.update(tracking.summary_metrics(summary))
        metrics.update(tracking.cross_organ_metrics(organ, summary))
    return metrics


def _log_artifacts(client, run_id: str, results_dir: Path) -> None:
    for name in ("summary.json", "cell.json", "train_config.json", "cases_used.json"):
        if (results_dir / name).is_file():
            client.log_artifact(run_id, str(results_dir / name))
    for sub in ("cross_organ", "previews"):
        if (results_dir / sub).is_dir():
            client.log_artifacts(run_id, str(results_dir / sub), artifact_path=sub)


def _record_failure(client, buffer, run_id: str, exc: BaseException) -> None:
    text = "".join(traceback.format_exception(exc))
    try:
        client.log_text(run_id, text, "error.txt")
    finally:
        _end(client, buffer, run_id, "FAILED", {"error": _one_line(exc)[:4000]})


def _end(client, buffer, run_id: str, status: str, tags: Mapping[str, str]) -> None:
    try:
        buffer.flush()
    finally:
        for key, value in tags.items():
            client.set_tag(run_id, key, value)
        client.set_terminated(run_id, status)


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")


# --- grids -----------------------------------------------------------------------------
def run_grid(grid: Grid | str | Path, executor: str = "local", max_parallel: int = 1,
             only: str | Mapping[str, set[str]] | None = None, dry_run: bool = False,
             tracking_uri: str | None = None, progress: bool = True, stages=None) -> list[CellOutcome]:
    """Run every (selected) cell of ``grid``; returns one outcome per cell.

    Args:
        executor: ``local`` (in-process, or ``max_parallel`` worker processes), ``slurm``
            (submitit job array) or ``submitit-local`` (submitit's local executor, for tests).
        only: filter like ``"organ=liver,regime=hu"`` (see `benchmark.cell.parse_only`).
        dry_run: print the cell table and return without running or touching MLflow; works
            before the datasets exist (warns which are missing).
        stages: replacement `benchmark.stages.Stages` (tests); default the real ones.
    """
    from benchmark.executors import execute

    grid = grid if isinstance(grid, Grid) else load_grid(grid)
    cells = select(cells_from_grid(grid, _fingerprints(grid, dry_run)), parse_only(only) if isinstance(only, str) else (only or {}))
    if not cells:
        raise InputError(f"{grid.path}: no cell matches --only {only!r}")
    if dry_run:
        from benchmark.estimates import print_estimates

        print_cell_table(cells, grid.results_dir)
        print_estimates(grid, cells)
        return []
    _preflight(grid, cells, stages)
    client, uri, experiment_id, parent = _open_grid_run(grid, len(cells), tracking_uri)
    checkpoints = _difftumor_checkpoints(grid, cells, progress)
    tasks = [_task(grid, cell, uri, experiment_id, parent, checkpoints.get(cell.synth_source)) for cell in cells]
    try:
        outcomes = execute(tasks, executor=executor, max_parallel=max_parallel, stages=stages,
                           slurm=grid.slurm, folder=grid.results_dir / ".submitit", progress=progress)
    except BaseException:  # Ctrl-C, or an error outside any cell: close the grid's run
        client.set_terminated(parent, "KILLED")
        raise
    counts = {s: sum(o.status == s for o in outcomes) for s in ("finished", "skipped", "failed", "busy")}
    summary = tracking.MetricBuffer(client, parent)
    summary.log({f"cells_{k}": v for k, v in counts.items()})
    summary.flush()
    client.set_terminated(parent, "FAILED" if counts["failed"] else "FINISHED")
    return outcomes


def _preflight(grid: Grid, cells: Sequence[Cell], stages) -> None:
    """Fail fast (InputError, exit 2) before any run starts: a [train] value the trainer rejects
    (instead of every cell FAILED for the same typo), then the integrity check of every dataset
    the cells train or evaluate on (cached per dataset)."""
    from benchmark.stages import real_stages

    stages = stages or real_stages()
    for cell in cells:
        stages.make_config(cell.backbone, cell.preset, cell.seed, cell.hp())
    if stages.check_dataset is None:
        return
    organs = {c.organ for c in cells} | {o for c in cells for o in grid.eval_organs(c.organ, c.regime, c.synth_source)}
    for organ in sorted(organs):
        stages.check_dataset(grid.datasets[organ])


def _open_grid_run(grid: Grid, n_cells: int, tracking_uri: str | None):
    """(client, uri, experiment id, parent run id) of this invocation, grid.toml logged."""
    uri = tracking.resolve_tracking_uri(tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
                                        or grid.mlflow.get("tracking_uri"))
    client = tracking.client_for(uri)
    experiment_id = tracking.ensure_experiment(client, grid.mlflow.get("experiment", grid.name), uri)
    parent = tracking.start_parent_run(
        client, experiment_id, name=f"grid {grid.name}", kind="grid",
        note=f"{n_cells} cells of grid `{grid.path}`; results under `{grid.results_dir}`.",
        tags={"results_root": str(grid.results_dir)})
    client.log_text(parent, grid.source, "grid.toml")
    return client, uri, experiment_id, parent


def _fingerprints(grid: Grid, dry_run: bool = False) -> dict[str, str]:
    """organ -> dataset fingerprint, after adding the inner validation split to splits.json where
    it is missing (once; the folds are kept). ``dry_run``: read only, and a missing dataset is a
    warning (its cells get fingerprint "missing"), so a grid can be listed before the data exist."""
    from benchmark.data import Dataset
    from benchmark.data.splits import make_splits

    out = {}
    for organ, path in grid.datasets.items():
        try:
            dataset = Dataset.open(path)
        except InputError as exc:
            if not dry_run:
                raise
            print(f"tumorbench: warning: dataset {organ!r} not available yet ({exc}); hashes of its cells "
                  "will change once it is imported", file=sys.stderr)
            out[organ] = "missing"
            continue
        if not dry_run and (dataset.root / "splits.json").is_file():
            make_splits(dataset)
        out[organ] = dataset.fingerprint()
    return out


def _task(grid: Grid, cell: Cell, uri: str, experiment_id: str, parent: str | None,
          checkpoint: str | None) -> CellTask:
    return CellTask(
        cell=cell, dataset_dir=str(grid.datasets[cell.organ]),
        eval_datasets=tuple((o, str(grid.datasets[o])) for o in grid.eval_organs(cell.organ, cell.regime, cell.synth_source)),
        results_root=str(grid.results_dir), device=grid.device, tracking_uri=uri,
        experiment_id=experiment_id, parent_run_id=parent,
        evaluate=tuple(sorted(grid.evaluate.items())), generator_checkpoint=checkpoint)


def _difftumor_checkpoints(grid: Grid, cells: Sequence[Cell], progress: bool) -> dict[str, str]:
    """source organ -> DiffTumor checkpoint dir for cells configured with ``checkpoint = "auto"``."""
    organs = sorted({c.synth_source for c in cells if c.generator_config().get("checkpoint") == "auto"})
    if not organs:
        return {}
    try:
        from benchmark.generators import tiny_autoencoder, train_tiny_generators
    except ImportError as exc:
        raise InputError(f"{grid.path}: generators.difftumor.checkpoints = \"auto\" needs "
                         f"benchmark.generators.train_tiny_generators ({exc})") from exc
    # cached by the trainer: reruns reuse the checkpoints when config and data are unchanged. One
    # autoencoder for all organs (trained on the first organ's CTs, which show the whole abdomen),
    # as the official DiffTumor; the diffusion models are per organ.
    shared = tiny_autoencoder(grid.datasets[organs[0]], grid.results_dir / "generators" / "shared",
                              device=grid.device, progress=progress)
    return {organ: str(train_tiny_generators(grid.datasets[organ], grid.results_dir / "generators" / organ,
                                             organ, device=grid.device, progress=progress, autoencoder=shared))
            for organ in organs}
