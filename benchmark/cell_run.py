"""One cell, end to end: the picklable CellTask a worker receives, ``run_cell`` (its MLflow run
around ``benchmark.cell_pipeline.run_pipeline``) and the grid -> task helpers the runner and the
tuner share. The executors import this module (not ``benchmark.runner``), so the runner can import
the executors without a cycle."""
from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from benchmark import tracking
from benchmark.cell import Cell
from benchmark.errors import InputError
from benchmark.eval_summary import flat_metrics
from benchmark.grid import EVAL_DEFAULTS, Grid
from benchmark.io import write_json_atomic
from tumorbench_common import mlflow_tags as T

SPOOL_NAME = "mlflow_spool.json"  # metrics not yet in MLflow (server unreachable), see MetricBuffer


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
    source_dataset_dir: str = ""  # the synth_source organ's dataset (where its generator was trained)
    log_checkpoints: bool = False  # [mlflow] log_checkpoints: the evaluated checkpoint as an artifact

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
    process holds the cell's lease, or took it over from this one: ``error`` says which)."""

    cell: Cell
    status: str
    run_id: str | None
    results_dir: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    error: str | None = None


def run_cell(task: CellTask, stages=None, **kwargs) -> CellOutcome:
    """`_run_cell` under the cell's lease (`benchmark.lease`): a cell another process is training
    is not touched; its outcome is ``busy`` and a line on stderr says who holds it. A process
    whose lease is taken over while it trains (it hung past the stale limit, or a later restart
    of its Slurm job took the cell) stops before its next checkpoint or MLflow write, leaves the
    MLflow run to the new holder, says so in one line and returns ``busy`` too."""
    from benchmark.lease import CellLease, LeaseLost

    lease = CellLease(task.results_dir)
    if not lease.acquire():
        print(f"tumorbench: cell {task.cell.run_name} ({task.cell.hash}) is being trained by "
              f"{lease.holder}; skipped", file=sys.stderr, flush=True)
        return CellOutcome(task.cell, "busy", None, str(task.results_dir), error=f"leased by {lease.holder}")
    try:
        epochs = task.cell.hp().get("epochs")  # None: the preset's default (the bar shows the epoch alone)
        return _run_cell(task, stages, owner_check=lease.check, on_epoch=lambda e: lease.note_epoch(e, epochs),
                         **kwargs)
    except LeaseLost as exc:
        print(f"tumorbench: cell {task.cell.run_name} ({task.cell.hash}) stopped: {exc}", file=sys.stderr, flush=True)
        return CellOutcome(task.cell, "busy", None, str(task.results_dir), error=f"lost lease: {exc}")
    finally:
        lease.release()


def _run_cell(task: CellTask, stages=None, *, report=None, progress: bool = True,
              train_only: bool = False, stop_exceptions: tuple = (),
              raise_errors: bool = False, owner_check=None, on_epoch=None) -> CellOutcome:
    """Run one cell inside its MLflow run (new, or the unfinished one of the same hash).

    Args:
        report: ``report(epoch, val_tumor_dsc)`` passed to the trainer (Optuna pruning).
        train_only: stop after training (tuning objective: validation DSC).
        stop_exceptions: exceptions that end the run as KILLED with tag ``stopped`` and
            propagate (``optuna.TrialPruned``).
        raise_errors: re-raise other errors after recording FAILED (default: return them).
        owner_check: raises `benchmark.lease.LeaseLost` when this process no longer holds the
            cell; called before every checkpoint and the final MLflow writes (and before a failure
            is recorded: a process that lost its cell writes nothing into the new holder's run).
        on_epoch: ``on_epoch(epoch)`` after each epoch's metrics (the lease's progress note).
    """
    from benchmark.lease import LeaseLost
    from benchmark.cell_pipeline import run_pipeline
    from benchmark.stages import real_stages

    stages = stages or real_stages()
    owner_check = owner_check or _always_owner
    client = tracking.client_for(task.tracking_uri)
    done = tracking.find_run(client, task.experiment_id, task.cell.hash, task.kind)
    if done is not None and done.info.status == "FINISHED":
        return CellOutcome(task.cell, "skipped", done.info.run_id, str(task.results_dir), dict(done.data.metrics))
    run_id, resumed = tracking.open_cell_run(
        client, task.experiment_id, cell=task.cell, kind=task.kind, parent_run_id=task.parent_run_id,
        run_name=task.run_name, note=_note(task), tags=_tags(task))
    if not resumed:
        _log_scoring_params(client, run_id, task)
    buffer = tracking.MetricBuffer(client, run_id, spool=task.results_dir / SPOOL_NAME)
    try:
        log_epoch = buffer.log_epoch if on_epoch is None else (
            lambda metrics, step: (buffer.log_epoch(metrics, step), on_epoch(step)))
        summaries = run_pipeline(task, stages, log_metrics=log_epoch, report=report,
                                 progress=progress, train_only=train_only, before_write=owner_check)
        owner_check()
        metrics = _log_results(client, buffer, run_id, task, summaries)
        owner_check()
    except LeaseLost:
        raise
    except stop_exceptions as exc:
        _end_noting(exc, client, buffer, run_id, "KILLED", {T.STOPPED: type(exc).__name__})
        raise
    except KeyboardInterrupt as exc:
        _end_noting(exc, client, buffer, run_id, "KILLED", {T.STOPPED: "KeyboardInterrupt"})
        raise
    except Exception as exc:
        owner_check()
        _record_failure(client, buffer, run_id, exc)  # a second error is a note on the first
        if raise_errors:
            raise
        return CellOutcome(task.cell, "failed", run_id, str(task.results_dir), error=one_line(exc))
    _end(client, buffer, run_id, "FINISHED", {})
    write_json_atomic(task.results_dir / "DONE", {"run_id": run_id, "resumed": resumed})
    return CellOutcome(task.cell, "finished", run_id, str(task.results_dir), metrics)


def _always_owner() -> None:
    pass


def _log_scoring_params(client, run_id: str, task: CellTask) -> None:
    """The grid's [evaluate] settings as ``evaluate.<key>`` params (the report header states the
    organ filter and thresholds; they are not part of the cell hash, so not in `Cell.params`)."""
    from mlflow.entities import Param

    keys = ("organ_filter", "organ_postprocess", "min_lesion_mm3", "patient_threshold_mm3")
    client.log_batch(run_id, params=[Param(f"evaluate.{k}", str(task.setting(k))) for k in keys])


def _tags(task: CellTask) -> dict[str, str]:
    """Where the cell's files are and what ran it; the cell's own fields are params (`Cell.params`)."""
    return {T.RESULTS_DIR: str(task.results_dir), T.DATASET_DIR: str(Path(task.dataset_dir).resolve()),
            T.DEVICE: task.device}


def _note(task: CellTask) -> str:
    cell = task.cell
    others = [o for o, _ in task.eval_datasets if o != cell.organ]
    source = f" from the {cell.synth_source} generator (healthy CTs only)" if cell.cross_organ else ""
    return (f"{cell.backbone} ({cell.preset}) trained on {cell.organ} fold {cell.fold} with "
            f"{cell.regime} tumors{source}, seed {cell.seed}; "
            + ("final checkpoint" if cell.selection == "final" else "checkpoint chosen on the inner validation split")
            + ", evaluated on the test fold"
            + (f" and cross-organ on {', '.join(others)}" if others else "")
            + f". Results: `{task.results_dir}`.")


def _log_results(client, buffer, run_id: str, task: CellTask, summaries: Mapping[str, dict]) -> dict[str, float]:
    """Final metrics (one request) and the result files as artifacts."""
    buffer.flush()
    metrics = _final_metrics(client, run_id, task, summaries)
    buffer.log(metrics)
    buffer.flush()
    _log_artifacts(client, run_id, task)
    return metrics


def _final_metrics(client, run_id: str, task: CellTask, summaries: Mapping[str, dict]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    history = client.get_metric_history(run_id, "val_tumor_dsc")
    if history:
        metrics["best_val_tumor_dsc"] = max(m.value for m in history)
    metrics.update(training_set_sizes(task.results_dir))
    for organ, summary in summaries.items():
        if organ == task.cell.organ:
            metrics.update(flat_metrics(summary))
        metrics.update(tracking.cross_organ_metrics(organ, summary))
    return metrics


def training_set_sizes(results_dir: Path) -> dict[str, float]:
    """``n_train_cases`` / ``n_train_tumor_cases`` / ``n_train_healthy_cases`` of a cell (its
    cases_used.json), logged as MLflow metrics so the report can set them beside the paper's n."""
    import json

    path = Path(results_dir) / "cases_used.json"
    used = json.loads(path.read_text()) if path.is_file() else {}
    keys = ("n_train_cases", "n_train_tumor_cases", "n_train_healthy_cases")
    return {key: float(used[key]) for key in keys if key in used}


def _log_artifacts(client, run_id: str, task: CellTask) -> None:
    """The result files, and the evaluated checkpoint's path relative to the cell folder as a tag (the
    results may move); with ``[mlflow] log_checkpoints = true`` the checkpoint as ``checkpoint/<name>``."""
    from benchmark.cell_pipeline import evaluated_checkpoint

    results_dir = task.results_dir
    for name in ("summary.json", "per_case.csv", "per_lesion.csv", "cell.json", "train_config.json", "cases_used.json"):
        if (results_dir / name).is_file():
            client.log_artifact(run_id, str(results_dir / name))
    for sub in ("cross_organ", "previews"):
        if (results_dir / sub).is_dir():
            client.log_artifacts(run_id, str(results_dir / sub), artifact_path=sub)
    checkpoint = evaluated_checkpoint(results_dir / "train", task.cell.selection)
    client.set_tag(run_id, T.CHECKPOINT, checkpoint.relative_to(results_dir).as_posix())
    if task.log_checkpoints:
        client.log_artifact(run_id, str(checkpoint), artifact_path="checkpoint")


def _record_failure(client, buffer, run_id: str, exc: BaseException) -> None:
    """FAILED with tag ``error`` and ``error.txt``; never raises, so a second error (the tracking
    server down too) cannot hide the first: it is added to ``exc`` as a note."""
    text = "".join(traceback.format_exception(exc))
    steps = [lambda: client.log_text(run_id, text, "error.txt")]
    _end_noting(exc, client, buffer, run_id, "FAILED", {T.ERROR: one_line(exc)[:4000]}, steps)


def _end_noting(first: BaseException, client, buffer, run_id: str, status: str, tags: Mapping[str, str],
                steps: list | None = None) -> None:
    """`_end` after ``first`` ended the cell: errors of recording it become notes on ``first``."""
    try:
        _end(client, buffer, run_id, status, tags, steps)
    except Exception as second:
        first.add_note(f"recording it in MLflow failed too: {one_line(second)}")


def _end(client, buffer, run_id: str, status: str, tags: Mapping[str, str], steps: list | None = None) -> None:
    """Flush, tag and terminate the run. Each step is tried even when one fails; the first error
    is raised, later ones are notes on it."""
    calls = [*(steps or []), buffer.flush, *(lambda k=k, v=v: client.set_tag(run_id, k, v) for k, v in tags.items()),
             lambda: client.set_terminated(run_id, status)]
    errors = []
    for call in calls:
        try:
            call()
        except Exception as exc:
            errors.append(exc)
    for later in errors[1:]:
        errors[0].add_note(f"then: {one_line(later)}")
    if errors:
        raise errors[0]


def one_line(exc: BaseException) -> str:
    notes = "".join(f" ({note})" for note in getattr(exc, "__notes__", ()))
    return f"{type(exc).__name__}: {exc}{notes}".replace("\n", " ")


# --- grids -----------------------------------------------------------------------------
def dataset_fingerprints(grid: Grid, dry_run: bool = False) -> dict[str, str]:
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


def make_task(grid: Grid, cell: Cell, uri: str, experiment_id: str, parent: str | None,
              checkpoint: str | None) -> CellTask:
    """The CellTask of ``cell`` in ``grid`` (tracked under ``experiment_id``, child of ``parent``)."""
    return CellTask(
        cell=cell, dataset_dir=str(grid.datasets[cell.organ]),
        eval_datasets=tuple((o, str(grid.datasets[o])) for o in grid.eval_organs(cell.organ, cell.regime, cell.synth_source)),
        results_root=str(grid.results_dir), device=grid.device, tracking_uri=uri,
        experiment_id=experiment_id, parent_run_id=parent,
        evaluate=tuple(sorted(grid.evaluate.items())), generator_checkpoint=checkpoint,
        source_dataset_dir=str(grid.datasets[cell.synth_source]),
        log_checkpoints=bool(grid.mlflow.get("log_checkpoints")))
