"""`tumorbench report`: the DiffTumor paper's tables and figures from an MLflow grid, as HTML/CSV/LaTeX."""
from __future__ import annotations

import argparse
from pathlib import Path

EPILOG = """examples:
  tumorbench report --out report/                      # newest grid in sqlite:///mlruns/mlflow.db
  tumorbench report --experiment paper_grid --out report/ --open
  tumorbench report --tracking-uri sqlite:////data/mlruns/mlflow.db --out report/ --realism realism_out/

Writes OUT/index.html (self-contained: inline CSS/JS, PNGs in OUT/img), OUT/tables/*.csv and *.tex,
including per_case.csv and per_lesion.csv (also logged to MLflow as a tumorbench.kind=report run).
Published numbers of the DiffTumor paper are shown in their own, purple italic columns.
Cells that have no finished run are shown as — and listed under each table."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "report", help="render the paper-style HTML report (tables, figures, provenance) from MLflow",
        description="Render Tables 3-6, pooled paired tests and Figs 10-16 of the DiffTumor paper from the "
                    "runs of one grid experiment, side by side with the published numbers.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="output folder (replaced atomically)")
    parser.add_argument("--experiment", help="MLflow experiment (grid name); default: most recent grid")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or "
                        "sqlite:///mlruns/mlflow.db)")
    parser.add_argument("--realism", type=Path, help="folder with realism_scores.csv and PNGs to embed "
                        "(runs tagged tumorbench.kind=realism are picked up automatically)")
    parser.add_argument("--ui-url", default="http://127.0.0.1:5000", help="MLflow UI base URL for run links "
                        "(default %(default)s)")
    parser.add_argument("--cases", type=int, default=3, help="qualitative cases per organ (default %(default)s)")
    parser.add_argument("--hardest", type=int, default=10, help="rows in the hardest-cases table (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed of the paired-test intervals, the "
                        "ranking and the patient-clustered lesion intervals (default %(default)s)")
    parser.add_argument("--n-boot", type=int, default=10_000, help="bootstrap resamples per interval and ranking "
                        "(default %(default)s; docs/statistics.md)")
    parser.add_argument("--no-mlflow-log", action="store_true", help="do not log per_case.csv / per_lesion.csv "
                        "as a tumorbench.kind=report run in the grid's experiment")
    parser.add_argument("--open", action="store_true", help="open index.html in the default browser")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=report_entry)


def report_entry(args) -> int:
    import os

    from reports.build import ReportOptions, build_report

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per summary.json is noise

    options = ReportOptions(experiment=args.experiment, tracking_uri=args.tracking_uri, realism_dir=args.realism,
                            ui_url=args.ui_url, qualitative_cases=args.cases, hardest_cases=args.hardest,
                            seed=args.seed, n_boot=args.n_boot, log_to_mlflow=not args.no_mlflow_log)
    index = build_report(args.out, options, open_browser=args.open, progress=not args.no_progress)
    print(index)
    return 0
