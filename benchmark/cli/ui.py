"""`tumorbench ui`: browse the MLflow store (grids, cells, tuning studies) in a browser."""
from __future__ import annotations

import argparse

EPILOG = """examples:
  tumorbench ui                       # http://127.0.0.1:5000 for ./mlruns/mlflow.db
  tumorbench ui --port 5055
  tumorbench ui --tracking-uri sqlite:////shared/tumorbench/mlflow.db

It listens on 127.0.0.1 only; reach it from another machine with an SSH tunnel
(ssh -L 5000:127.0.0.1:5000 host). Stop it with Ctrl-C.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "ui", help="start the MLflow UI for the project's tracking store",
        description="Start `mlflow server` (one worker, loopback only) on the project's MLflow store "
                    "and print its URL.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1 (default 5000)")
    parser.add_argument("--tracking-uri", metavar="URI",
                        help="store to show (default MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db)")
    parser.set_defaults(func=ui_entry)


def ui_entry(args) -> int:
    from benchmark.tracking import serve_ui

    return serve_ui(args.tracking_uri, port=args.port)
