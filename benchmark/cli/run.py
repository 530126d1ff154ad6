"""`tumorbench run GRID.toml`: train and evaluate every cell of a grid, tracked in MLflow."""
from __future__ import annotations

import argparse

EPILOG = """examples:
  tumorbench run grids/demo.toml --dry-run              # list the cells and their folders
  tumorbench run grids/demo.toml                        # run them here, one after another
  tumorbench run grids/demo.toml --max-parallel 2       # two local worker processes
  tumorbench run grids/paper.toml --executor slurm      # one Slurm job array ([slurm] section)
  tumorbench run grids/demo.toml --only organ=liver,regime=hu

Rerunning is safe: finished cells are skipped, killed ones resume from their last checkpoint
in the same MLflow run, failed ones are retried. Store: sqlite:///mlruns/mlflow.db unless
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
    parser.add_argument("--max-parallel", type=int, default=1, metavar="N",
                        help="cells running at once for local executors (default 1)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the cell table and exit (works before the datasets exist)")
    parser.add_argument("--only", metavar="KEY=VAL,...",
                        help="run a subset, keys organ|backbone|fold|regime|synth_source|seed; a repeated key or "
                             "VAL1|VAL2 matches any (e.g. organ=liver,regime=hu|real)")
    parser.add_argument("--tracking-uri", metavar="URI", help="MLflow tracking URI (server or database)")
    parser.add_argument("--allow-local-store", action="store_true",
                        help="with --executor slurm: accept a sqlite/file MLflow store (refused by default: many "
                             "jobs writing one sqlite file on a shared filesystem lose runs; see the server "
                             "recipe in docs/runner.md). Only when every job runs on this machine's disk")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run_entry)


def run_entry(args) -> int:
    from benchmark.runner import run_grid

    outcomes = run_grid(args.grid, executor=args.executor, max_parallel=args.max_parallel, only=args.only,
                        dry_run=args.dry_run, tracking_uri=args.tracking_uri, progress=not args.no_progress,
                        allow_local_store=args.allow_local_store)
    failed = [o for o in outcomes if o.status == "failed"]
    for outcome in failed:
        print(f"FAILED {outcome.cell.run_name} ({outcome.results_dir}): {outcome.error}")
    if outcomes:
        done = sum(o.status == "finished" for o in outcomes)
        skipped = sum(o.status == "skipped" for o in outcomes)
        busy = sum(o.status == "busy" for o in outcomes)
        print(f"{done} finished, {skipped} already done, {len(failed)} failed"
              + (f", {busy} being trained by another process (skipped)" if busy else ""))
    return 1 if failed else 0
