"""`tumorbench tune GRID.toml --cell ...`: Optuna search over one cell's hyperparameters."""
from __future__ import annotations

import argparse

from benchmark.cli.run import add_set_argument

EPILOG = """examples:
  tumorbench tune grids/demo.toml --cell organ=liver,backbone=unet,regime=hu,fold=0 --trials 20
  tumorbench tune grids/demo.toml --cell organ=liver,backbone=unet,regime=hu,fold=0 --set train.epochs=4
  # several workers (machines) on one study: same --storage and --study-name everywhere
  tumorbench tune grids/paper.toml --cell organ=liver,backbone=unet,regime=hu,fold=0 --trials 50 \\
      --storage postgresql://user@db-host/optuna --study-name liver-unet-hu

The search space is the grid's [optuna.space] table; the pruner is [optuna] pruner (median |
hyperband | none). Rerunning continues the study (a trial of a killed worker is re-queued with
the same parameters and resumes from its checkpoint). The best parameters are written as a
TOML snippet (results/tune/<study>/best_params.toml) to paste into the grid.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "tune", help="tune one cell's hyperparameters with Optuna (pruning, MLflow nested runs)",
        description="Optuna study maximising the inner-validation tumor DSC of one grid cell (the split "
                    "carved from the training folds in splits.json; the test fold is never used). Each "
                    "trial is a nested MLflow run under the study's run.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("grid", help="grid TOML file with an [optuna.space] table")
    parser.add_argument("--cell", required=True, metavar="organ=..,backbone=..,regime=..,fold=..",
                        help="the cell to tune (one value for each key; optional synth_source=.., seed=.. "
                             "pick a cross-organ cell / another seed)")
    parser.add_argument("--trials", type=int, default=20, metavar="N",
                        help="complete + pruned trials the study should hold (default 20)")
    add_set_argument(parser)
    parser.add_argument("--storage", metavar="URL",
                        help="Optuna RDB URL (default sqlite under results/tune/<study>/optuna.db)")
    parser.add_argument("--study-name", help="default <grid>__<organ>_<backbone>_<regime>_f<fold>")
    parser.add_argument("--tracking-uri", metavar="URI", help="MLflow tracking URI")
    parser.add_argument("--heartbeat", type=int, default=60, metavar="S",
                        help="trial heartbeat interval in seconds (stale after 2x; default 60)")
    parser.add_argument("--allow-local-store", action="store_true",
                        help="inside a Slurm job: accept a sqlite Optuna storage / sqlite or file MLflow store "
                             "(refused by default; see the server recipe in docs/runner.md)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=tune_entry)


def tune_entry(args) -> int:
    from benchmark.grid import load_grid
    from benchmark.tune import tune_cell

    result = tune_cell(load_grid(args.grid, args.overrides), args.cell, args.trials, storage=args.storage,
                       study_name=args.study_name, tracking_uri=args.tracking_uri, progress=not args.no_progress,
                       heartbeat_interval=args.heartbeat, allow_local_store=args.allow_local_store)
    print(f"study {result.study_name}: {result.n_complete} complete, {result.n_pruned} pruned trials")
    if result.best_value is not None:
        print(f"best val_tumor_dsc {result.best_value:.4f} with {result.best_params}")
        print(f"grid snippet: {result.snippet}")
    print(f"files: {result.folder}  storage: {result.storage}")
    return 0
