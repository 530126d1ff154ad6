"""Run a grid: expand it into cells, skip finished ones, execute the rest, track in MLflow.

Idempotent and resumable, keyed by the cell hash (MLflow tag ``tumorbench.cell_hash``):
- a cell whose run FINISHED is skipped (no new run; when all are, no new parent run either);
- a cell whose run is RUNNING/KILLED/FAILED (process killed, node lost, error) is reopened
  in the SAME run and its training resumes from ``train/last.pt``;
- a failing cell is recorded FAILED (tag ``tumorbench.error`` + artifact ``error.txt``) and the grid
  goes on.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

from benchmark import tracking
from benchmark.cell import Cell, cells_from_grid, parse_only, print_cell_table, select
from benchmark.cell_run import CellOutcome, CellTask, dataset_fingerprints, make_task, run_cell  # noqa: F401
from benchmark.errors import InputError
from benchmark.grid import Grid, load_grid


def run_grid(grid: Grid | str | Path, executor: str = "local", max_parallel: int | None = None,
             only: str | Mapping[str, set[str]] | None = None, dry_run: bool = False,
             tracking_uri: str | None = None, progress: bool = True, stages=None,
             allow_local_store: bool = False, gpus: Sequence[str] | None = None) -> list[CellOutcome]:
    """Run every (selected) cell of ``grid``; returns one outcome per cell.

    Args:
        executor: ``local`` (in-process, or ``max_parallel`` worker processes), ``slurm``
            (submitit job array) or ``submitit-local`` (submitit's local executor, for tests).
        only: filter like ``"organ=liver,regime=hu"`` (see `benchmark.cell.parse_only`).
        dry_run: print the cell table and return without running or touching MLflow; works
            before the datasets exist (warns which are missing).
        max_parallel: cells at once for local executors (default 1; with GPUs one per GPU).
        stages: replacement `benchmark.stages.Stages` (tests); default the real ones.
        allow_local_store: let ``slurm`` jobs share a sqlite/file MLflow store (one node, local disk);
            refused otherwise (`benchmark.slurm.refuse_local_stores`).
        gpus: local executor, ``device = "cuda"``: GPU ids, one worker process per GPU seeing
            only its own (default: every visible GPU; see `local_gpus`).
    """
    from benchmark.executors import execute

    grid = grid if isinstance(grid, Grid) else load_grid(grid)
    cells = select(cells_from_grid(grid, dataset_fingerprints(grid, dry_run)), parse_only(only) if isinstance(only, str) else (only or {}))
    if not cells:
        raise InputError(f"{grid.path}: no cell matches --only {only!r}")
    if dry_run:
        from benchmark.estimates import print_estimates

        print_cell_table(cells, grid.results_dir)
        print_estimates(grid, cells)
        return []
    max_parallel, gpus = local_gpus(grid, executor, max_parallel, gpus)
    uri = grid_tracking_uri(grid, tracking_uri)
    if executor == "slurm":
        from benchmark.slurm import refuse_local_stores

        refuse_local_stores({"MLflow tracking URI": uri}, allowed=allow_local_store, where="--executor slurm")
    _preflight(grid, cells, stages, executor, gpus)
    client = tracking.client_for(uri)
    experiment_id = tracking.ensure_experiment(client, tracking.grid_experiment(grid), uri)
    parent, reused = tracking.open_grid_run(client, experiment_id, grid, cells)
    checkpoints = _difftumor_checkpoints(grid, cells, progress)
    tasks = [make_task(grid, cell, uri, experiment_id, parent, checkpoints.get((cell.synth_source, cell.fold)))
             for cell in cells]
    try:
        outcomes = execute(tasks, executor=executor, max_parallel=max_parallel, stages=stages, gpus=gpus,
                           slurm=grid.slurm, folder=grid.results_dir / ".submitit", progress=progress)
    except BaseException:  # Ctrl-C, or an error outside any cell: close the grid's run (not an earlier one)
        if not reused:
            client.set_terminated(parent, "KILLED")
        raise
    counts = {s: sum(o.status == s for o in outcomes) for s in ("finished", "skipped", "failed", "busy")}
    if reused and counts["skipped"] == len(outcomes):  # nothing ran: the earlier parent stays as it was
        return outcomes
    summary = tracking.MetricBuffer(client, parent)
    summary.log({f"cells_{k}": v for k, v in counts.items()})
    summary.flush()
    client.set_terminated(parent, "FAILED" if counts["failed"] else "FINISHED")
    return outcomes


def _preflight(grid: Grid, cells: Sequence[Cell], stages, executor: str, gpus) -> None:
    """Fail fast (InputError, exit 2) before any run starts: a [train] value the trainer rejects
    (instead of every cell FAILED for the same typo), a device this machine does not have (local
    executors), a fold missing from a splits.json, then the integrity check of every dataset the
    cells train or evaluate on (cached per dataset)."""
    from benchmark.data import Dataset
    from benchmark.stages import real_stages

    from benchmark.generator_provenance import check_checkpoints

    stages = stages or real_stages()
    for cell in cells:
        stages.make_config(cell.backbone, cell.preset, cell.seed, cell.hp())
    check_checkpoints(grid, cells)
    if stages.check_device is not None and executor != "slurm":  # a Slurm driver may have no GPU
        stages.check_device(grid.device, where=f"{grid.path}: field 'device'")
        for gpu in gpus if gpus and "CUDA_VISIBLE_DEVICES" not in os.environ else ():  # else local_gpus checked
            stages.check_device(f"cuda:{gpu}", where="--gpus")
    folds = {(o, c.fold) for c in cells for o in grid.eval_organs(c.organ, c.regime, c.synth_source)}
    for organ, fold in sorted(folds):  # a fold missing from splits.json: one error, not one per cell
        Dataset.open(grid.datasets[organ]).fold(fold)
    if stages.check_dataset is None:
        return
    for organ in sorted({organ for organ, _ in folds}):
        stages.check_dataset(grid.datasets[organ])


def grid_tracking_uri(grid: Grid, tracking_uri: str | None) -> str:
    """--tracking-uri > $MLFLOW_TRACKING_URI > the grid's [mlflow] tracking_uri > the default store."""
    return tracking.resolve_tracking_uri(tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
                                         or grid.mlflow.get("tracking_uri"))


def local_gpus(grid: Grid, executor: str, max_parallel: int | None,
               gpus: Sequence[str] | None) -> tuple[int, list[str] | None]:
    """(cells at once, GPU id per worker or None). ``--gpus`` (default: all visible when the
    grid's device is ``cuda`` and there are several) gives the local executor one worker per GPU;
    ids are the parent's indices, mapped through its own CUDA_VISIBLE_DEVICES."""
    if gpus is not None and (executor != "local" or grid.device != "cuda"):
        raise InputError(f"--gpus: needs --executor local and device = \"cuda\" in {grid.path} (got "
                         f"{executor}, {grid.device!r}); Slurm cells get GPUs from [slurm] gpus_per_node")
    if gpus is None and executor == "local" and grid.device == "cuda" and max_parallel != 1:
        import torch

        gpus = [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.device_count() > 1 else None
    if not gpus:
        return max_parallel or 1, None
    if max_parallel is not None and max_parallel > len(gpus):
        raise InputError(f"--max-parallel {max_parallel}: at most one cell per GPU ({len(gpus)} GPUs)")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    physical = [v.strip() for v in visible.split(",")] if visible else None
    if physical is not None and any(int(g) >= len(physical) for g in gpus):
        raise InputError(f"--gpus {','.join(gpus)}: only {len(physical)} GPUs visible (CUDA_VISIBLE_DEVICES={visible})")
    chosen = [physical[int(g)] if physical else str(g) for g in gpus][:max_parallel or len(gpus)]
    return len(chosen), chosen


def _difftumor_checkpoints(grid: Grid, cells: Sequence[Cell], progress: bool) -> dict[tuple[str, int], str]:
    """(source organ, fold) -> DiffTumor checkpoint dir for cells with ``checkpoint = "auto"``.

    Each is trained on that fold's training cases of the source organ's dataset only (autoencoder
    included), so no generator sees a test case of the fold it serves. One autoencoder per source
    organ and fold (the official one is shared by all organs, trained on AbdomenAtlas): a shared one
    would be trained on one organ's tumor CTs, which a cross-organ cell targeting that organ must
    never see."""
    keys = sorted({(c.synth_source, c.fold) for c in cells if c.generator_config().get("checkpoint") == "auto"})
    if not keys:
        return {}
    try:
        from benchmark.generators import train_tiny_generators
    except ImportError as exc:
        raise InputError(f"{grid.path}: generators.difftumor.checkpoints = \"auto\" needs "
                         f"benchmark.generators.train_tiny_generators ({exc})") from exc
    # cached by the trainer: reruns reuse the checkpoints when config, data and fold are unchanged
    return {(organ, fold): str(train_tiny_generators(
                grid.datasets[organ], grid.results_dir / "generators" / organ / f"fold_{fold}", organ,
                device=grid.device, fold=fold, progress=progress))
            for organ, fold in keys}
