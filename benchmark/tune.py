"""Optuna tuning of one grid cell: each trial is the same cell runner with new hyperparameters.

- objective: best *inner validation* tumor DSC of the tuned fold (the split carved from that
  fold's training cases in splits.json; every trial trains on the rest of them and never sees
  the test fold), reported through the trainer's ``report(epoch, value)`` so the pruner (median
  or Hyperband) can stop bad trials;
- scope: the best values apply to the tuned cell's fold only: ``best_params.toml`` is a
  ``[tuned."organ=..,backbone=..,regime=..,fold=k"]`` table (`benchmark.grid`), because fold k's
  training cases are the other folds' test cases. Tune each fold for all folds (nested CV);
- cross-organ cells are not tuned: their objective would be the target's real tumors;
- storage: sqlite under ``<results>/tune/<study>/optuna.db`` by default, any RDB URL
  (PostgreSQL/MySQL) for many workers; heartbeats + `RetryHeartbeatStaleTrialCallback`
  re-queue the trial of a killed worker with the same parameters, which reopens the same
  MLflow run and resumes from that trial's checkpoint;
- MLflow: a study run (tag ``tumorbench.kind=study``) with one nested run per trial
  (``tumorbench.kind=trial``), logged by the objective itself; plots and the best
  parameters (a grid-ready TOML snippet) as artifacts and files.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmark import tracking
from benchmark.cell import CELL_KEYS, cells_from_grid, parse_only, select
from benchmark.errors import InputError
from benchmark.grid import Grid, load_grid
from benchmark.runner import grid_tracking_uri
from tumorbench_common.names import check_name


@dataclass(frozen=True)
class TuneResult:
    study_name: str
    storage: str
    folder: Path
    best_value: float | None
    best_params: dict[str, Any]
    n_complete: int
    n_pruned: int
    snippet: Path | None


def tune_cell(grid: Grid | str | Path, cell: str, n_trials: int, *, storage: str | None = None,
              study_name: str | None = None, tracking_uri: str | None = None, progress: bool = True,
              stages=None, heartbeat_interval: int = 60, grace_period: int | None = None,
              allow_local_store: bool = False) -> TuneResult:
    """Run (or continue) a study until it holds ``n_trials`` complete or pruned trials.

    Args:
        cell: selector naming one cell, e.g. ``"organ=liver,backbone=unet,regime=hu,fold=0"``.
        storage: Optuna RDB URL shared by all workers of the study.
        heartbeat_interval: seconds between trial heartbeats; a trial silent for
            ``grace_period`` (default 2x) is failed and re-queued by the next worker.
        allow_local_store: inside a Slurm job, accept a sqlite storage / sqlite or file MLflow store
            (refused by default: `benchmark.slurm.refuse_local_stores`).
    """
    import optuna

    grid = grid if isinstance(grid, Grid) else load_grid(grid)
    base = _one_cell(grid, cell)
    if base.cross_organ:
        raise InputError(f"--cell {cell!r}: a cross-organ cell is not tuned (its objective would be the "
                         f"{base.organ}'s real tumors, which the cell must never see); tune the {base.synth_source} cell")
    if not grid.optuna["space"]:
        raise InputError(f"{grid.path}: [optuna.space] is empty; add e.g. lr = {{low = 1e-4, high = 1e-2, log = true}}")
    source = f"_from_{base.synth_source}" if base.cross_organ else ""
    study_name = check_name(study_name or f"{grid.name}__{base.organ}_{base.backbone}_{base.regime}{source}_f{base.fold}",
                            "--study-name")
    folder = grid.results_dir / "tune" / study_name
    storage = storage or f"sqlite:///{folder / 'optuna.db'}"
    _refuse_local_stores_in_slurm(grid, storage, tracking_uri, allow_local_store)
    folder.mkdir(parents=True, exist_ok=True)
    rdb = _storage(storage, heartbeat_interval, grace_period)
    study = optuna.create_study(storage=rdb, study_name=study_name, direction="maximize", load_if_exists=True)
    # Seeded, but offset by the trials already there: a restarted worker must not replay
    # the first worker's draws (same params -> same cell -> a wasted trial).
    seed = grid.seed + 1009 * len(study.get_trials(deepcopy=False))
    study = optuna.load_study(study_name=study_name, storage=rdb, pruner=_pruner(grid, base),
                              sampler=optuna.samplers.TPESampler(seed=seed))
    context = {**_mlflow_context(grid, base, study_name, storage, tracking_uri), "folder": folder}
    objective = _objective(grid, base, context, stages)
    remaining = n_trials - _count(study, ("COMPLETE", "PRUNED"))
    if remaining > 0:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study.optimize(objective, n_trials=remaining, catch=(Exception,), show_progress_bar=progress,
                       callbacks=[optuna.study.MaxTrialsCallback(
                           n_trials, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))])
    return _finish(study, grid, folder, storage, context)


def _refuse_local_stores_in_slurm(grid: Grid, storage: str, tracking_uri: str | None, allowed: bool) -> None:
    """Workers of one study started by Slurm (``srun -n4 tumorbench tune``, an array) share the
    stores: a sqlite file there is refused unless allowed (before any file is written)."""
    import os

    if "SLURM_JOB_ID" not in os.environ:
        return
    from benchmark.slurm import refuse_local_stores

    refuse_local_stores({"Optuna storage": storage, "MLflow tracking URI": grid_tracking_uri(grid, tracking_uri)},
                        allowed=allowed, where="tumorbench tune inside Slurm job " + os.environ["SLURM_JOB_ID"])


def _one_cell(grid: Grid, selector: str):
    only = parse_only(selector)
    missing = [k for k in CELL_KEYS if k not in only]
    if missing or any(len(v) != 1 for v in only.values()):
        raise InputError(f"--cell: {selector!r} must give one value for each of {list(CELL_KEYS)} "
                         "(and optionally synth_source, seed)")
    only.setdefault("synth_source", set(only["organ"]))
    only.setdefault("seed", {str(grid.seeds[0])})
    from benchmark.cell_run import dataset_fingerprints

    matches = select(cells_from_grid(grid, dataset_fingerprints(grid)), only)
    if len(matches) != 1:
        raise InputError(f"--cell: {selector!r} matches no cell of {grid.path} (check its organs/backbones/folds/regimes)")
    return matches[0]


def _storage(url: str, heartbeat_interval: int, grace_period: int | None):
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    try:
        return RDBStorage(url, engine_kwargs=engine, heartbeat_interval=heartbeat_interval,
                          grace_period=grace_period or 2 * heartbeat_interval,
                          heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3))
    except (ValueError, ImportError, optuna.exceptions.StorageInternalError) as exc:
        raise InputError(f"--storage: cannot open Optuna storage {url!r} ({exc})") from exc


def _pruner(grid: Grid, cell):
    import optuna

    settings = grid.optuna
    if settings["pruner"] == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=int(cell.hp()["epochs"]))
    if settings["pruner"] == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=int(settings["n_startup_trials"]),
                                       n_warmup_steps=int(settings["n_warmup_steps"]))


def suggest(trial, space: dict[str, dict]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Draw one point: (hyperparameter overrides, generator kwarg overrides)."""
    hp, gen = {}, {}
    for key, spec in space.items():
        if "choices" in spec:  # Optuna choices must be scalars: index lists by position
            options = [json.dumps(c) for c in spec["choices"]]
            value = json.loads(trial.suggest_categorical(key, options))
        elif all(isinstance(spec[b], int) for b in ("low", "high")) and not spec.get("log"):
            value = trial.suggest_int(key, spec["low"], spec["high"], step=int(spec.get("step", 1)))
        else:
            value = trial.suggest_float(key, float(spec["low"]), float(spec["high"]), log=bool(spec["log"]),
                                        step=spec.get("step"))
        target, name = (gen, key[len("generator."):]) if key.startswith("generator.") else (hp, key)
        target[name] = value
    return hp, gen


def _objective(grid: Grid, base, context: dict, stages):
    import optuna

    from benchmark.cell_run import make_task, run_cell

    def objective(trial) -> float:
        hp, gen = suggest(trial, grid.optuna["space"])
        # a trial selects on the inner split of its fold, whatever the grid's checkpoint_selection
        cell = replace(base.with_overrides(hp, gen), selection="inner_val")
        trial.set_user_attr("cell_hash", cell.hash)
        trial.set_user_attr("regime", base.regime)
        trial.set_user_attr("selector", tuned_selector(base))
        task = replace(make_task(grid, cell, context["uri"], context["experiment_id"], context["run_id"], None),
                       kind="trial", run_name=f"{base.run_name} trial {trial.number}",
                       results_root=str(context["folder"] / "trials"))

        def report(epoch: int, value: float) -> None:
            trial.report(float(value), int(epoch))
            if trial.should_prune():
                raise optuna.TrialPruned(f"epoch {epoch}: val_tumor_dsc {value:.4f}")

        outcome = run_cell(task, stages, report=report, train_only=True, progress=False,
                           stop_exceptions=(optuna.TrialPruned,), raise_errors=True)
        if "best_val_tumor_dsc" not in outcome.metrics:
            raise RuntimeError(f"trial {trial.number}: training reported no val_tumor_dsc")
        return float(outcome.metrics["best_val_tumor_dsc"])

    return objective


def _mlflow_context(grid: Grid, base, study_name: str, storage: str, tracking_uri: str | None) -> dict:
    from mlflow.entities import Param

    from tumorbench_common import mlflow_tags as T

    uri = grid_tracking_uri(grid, tracking_uri)
    client = tracking.client_for(uri)
    experiment_id = tracking.ensure_experiment(client, tracking.grid_experiment(grid), uri)
    runs = client.search_runs([experiment_id], filter_string=(
        f"tags.`{T.STUDY_NAME}` = '{study_name}' and tags.`{T.KIND}` = 'study'"), max_results=1)
    if runs:
        run_id = runs[0].info.run_id
        client.update_run(run_id, status="RUNNING")
    else:
        run_id = tracking.start_parent_run(
            client, experiment_id, name=f"tune {base.run_name}", kind="study",
            note=f"Optuna study `{study_name}` ({storage}) tuning {base.run_name}; one nested run per trial.",
            tags={T.STUDY_NAME: study_name, T.OPTUNA_STORAGE: storage})
        client.log_batch(run_id, params=[Param(k, str(getattr(base, k))) for k in ("organ", "backbone", "regime", "fold")])
        client.log_text(run_id, grid.source, "grid.toml")
    return {"uri": uri, "client": client, "experiment_id": experiment_id, "run_id": run_id}


def _count(study, states: tuple[str, ...]) -> int:
    return sum(t.state.name in states for t in study.get_trials(deepcopy=False))


def _finish(study, grid: Grid, folder: Path, storage: str, context: dict) -> TuneResult:
    n_complete, n_pruned = _count(study, ("COMPLETE",)), _count(study, ("PRUNED",))
    best = study.best_trial if n_complete else None
    snippet = write_study_files(study, grid, folder) if best else None
    client, run_id = context["client"], context["run_id"]
    buffer = tracking.MetricBuffer(client, run_id)
    buffer.log({"best_value": best.value if best else None, "n_complete": n_complete, "n_pruned": n_pruned})
    buffer.flush()
    for path in sorted(folder.iterdir()):
        if path.suffix in (".png", ".toml", ".csv"):
            client.log_artifact(run_id, str(path), artifact_path="study")
    client.set_terminated(run_id, "FINISHED")
    return TuneResult(study.study_name, storage, folder, best.value if best else None,
                      dict(best.params) if best else {}, n_complete, n_pruned, snippet)


def write_study_files(study, grid: Grid, folder: Path) -> Path:
    """trials.csv, Optuna's matplotlib plots (history, importances, parallel coordinates)
    and ``best_params.toml``; returns the TOML snippet's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as vis
    from benchmark.io import atomic_path, write_text_atomic

    with atomic_path(folder / "trials.csv") as tmp:
        study.trials_dataframe().to_csv(tmp, index=False)
    plots = {"history": vis.plot_optimization_history, "importances": vis.plot_param_importances,
             "parallel_coordinates": vis.plot_parallel_coordinate}
    for name, plot in plots.items():
        try:
            with warnings.catch_warnings():  # "experimental" and small-study warnings
                warnings.simplefilter("ignore")
                axes = plot(study)
        except (ValueError, RuntimeError):  # e.g. importances need >= 2 complete trials
            continue
        figure = getattr(axes, "figure", None) or axes.flat[0].figure
        with atomic_path(folder / f"{name}.png") as tmp:
            figure.savefig(tmp, bbox_inches="tight", dpi=80)
        plt.close(figure)
    snippet = folder / "best_params.toml"
    write_text_atomic(snippet, best_params_toml(study, grid))
    return snippet


def tuned_selector(cell) -> str:
    """The [tuned] key naming ``cell``'s organ, backbone, regime and fold."""
    return f"organ={cell.organ},backbone={cell.backbone},regime={cell.regime},fold={cell.fold}"


def best_params_toml(study, grid: Grid) -> str:
    """The best trial's values as a grid table that applies to the tuned cell (its fold) only."""
    best = study.best_trial
    hp, gen = suggest(optuna_fixed_trial(best.params), grid.optuna["space"])
    selector = best.user_attrs["selector"]
    lines = [f"# best of study {study.study_name!r}: inner-validation tumor DSC {best.value:.4f} "
             f"(trial {best.number}); applies to this fold only",
             f"[tuned.{json.dumps(selector)}]"] + [f"{k} = {_toml_value(v)}" for k, v in hp.items()]
    lines += [f"{json.dumps('generator.' + k)} = {_toml_value(v)}" for k, v in gen.items()]
    return "\n".join(lines) + "\n"


def optuna_fixed_trial(params: dict):
    import optuna

    return optuna.trial.FixedTrial(params)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value)  # ints, strings, lists of numbers
