"""`tumorbench run GRID.toml`: train and evaluate every cell of a grid, tracked in MLflow."""
from __future__ import annotations

import argparse

EPILOG = """examples:
  tumorbench run grids/demo.toml --dry-run              # list the cells and their folders
  tumorbench run grids/demo.toml                        # run them here, one after another
  tumorbench run grids/demo.toml --max-parallel 2       # two local worker processes
  tumorbench run grids/paper.toml --gpus 0,1            # one cell per GPU, each worker sees its own
  tumorbench run grids/paper.toml --executor slurm      # one Slurm job array ([slurm] section)
  tumorbench run grids/demo.toml --only organ=liver,regime=hu
  tumorbench run grids/demo.toml --set train.epochs=5 --set evaluate.overlap=0.25 --dry-run

Rerunning is safe: finished cells are skipped, killed ones resume from their last checkpoint
in the same MLflow run, failed ones are retried. Exit code 1 when a cell failed or is being trained by another
process (BUSY lines say where). Store: sqlite:///mlruns/mlflow.db unless
--tracking-uri or MLFLOW_TRACKING_URI is set. Browse it with `tumorbench ui`.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run", help="run a grid of cells (train, predict, evaluate) with MLflow tracking",
        description="Expand GRID.toml into cells (organ x backbone x fold x regime), run the ones not "
                    "finished yet and log each as an MLflow run under one run for this invocation.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("grid", help="grid TOML file (see grids/demo.toml)")
    parser.add_argument("--executor", choices=["local", "slurm", "submitit-local"], default="local",
                        help="local processes (default), a Slurm job array, or submitit's local executor")
    parser.add_argument("--max-parallel", type=int, default=None, metavar="N",
                        help="cells running at once for local executors (default 1; on GPUs one per GPU)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the cell table and exit (works before the datasets exist)")
    parser.add_argument("--only", metavar="KEY=VAL,...",
                        help="run a subset, keys organ|backbone|fold|regime|synth_source|seed; a repeated key or "
                             "VAL1|VAL2 matches any (e.g. organ=liver,regime=hu|real)")
    add_set_argument(parser)
    parser.add_argument("--gpus", type=_gpu_list, metavar="0,1,...",
                        help="local executor with device cuda: GPUs to use, one cell per GPU at a time, each worker "
                             "process seeing only its own GPU (default: all visible)")
    parser.add_argument("--tracking-uri", metavar="URI", help="MLflow tracking URI (server or database)")
    parser.add_argument("--allow-local-store", action="store_true",
                        help="with --executor slurm: accept a sqlite/file MLflow store (refused by default: many "
                             "jobs writing one sqlite file on a shared filesystem lose runs; see the server "
                             "recipe in docs/runner.md). Only when every job runs on this machine's disk")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run_entry)


def add_set_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a grid value, checked like the file (repeatable, later wins): KEY is dotted "
                             "(train.epochs, train.real.epochs, evaluate.overlap, generators.hu.size_probs), VALUE "
                             "a TOML value (5, [48,48,32], \"cuda\"; a bare word is a string). Training values "
                             "change the cell hash; the runs' grid.toml holds the grid as run")


def _gpu_list(text: str) -> list[str]:
    ids = [part.strip() for part in text.split(",")]
    if not ids or not all(part.isdigit() for part in ids) or len(set(ids)) != len(ids):
        raise argparse.ArgumentTypeError(f"{text!r}: expected distinct GPU indices like 0,1,3")
    return ids


def run_entry(args) -> int:
    from benchmark.grid import load_grid
    from benchmark.runner import run_grid

    outcomes = run_grid(load_grid(args.grid, args.overrides), executor=args.executor, max_parallel=args.max_parallel,
                        only=args.only, dry_run=args.dry_run, tracking_uri=args.tracking_uri,
                        progress=not args.no_progress, allow_local_store=args.allow_local_store, gpus=args.gpus)
    failed = [o for o in outcomes if o.status == "failed"]
    busy = [o for o in outcomes if o.status == "busy"]
    for outcome in failed:
        print(f"FAILED {outcome.cell.run_name} ({outcome.results_dir}): {outcome.error}")
    for outcome in busy:  # not done here: the command must not look like a finished grid
        print(f"BUSY {outcome.cell.run_name} ({outcome.results_dir}): {outcome.error}")
    if outcomes:
        done = sum(o.status == "finished" for o in outcomes)
        skipped = sum(o.status == "skipped" for o in outcomes)
        print(f"{done} finished, {skipped} already done, {len(failed)} failed"
              + (f", {len(busy)} being trained by another process, not done here (rerun when they end): "
                 + "; ".join(f"{o.cell.run_name} {o.error}" for o in busy) if busy else ""))
    return 1 if failed or busy else 0
