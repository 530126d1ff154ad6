"""`tumorbench` command line: one thin module per subcommand.

Each module in this package defines ``register(subparsers)`` that adds its parser and sets
``func`` to an ``*_entry(args) -> int`` function that only calls one API function.
Heavy packages (torch, monai, mlflow) are imported inside the entries, so ``--help`` and
argument errors answer fast.
"""
from __future__ import annotations

import argparse
import os
import sys
from importlib import import_module

# (subcommand module, one-line help); modules live in benchmark/cli/<module>.py
SUBCOMMANDS = [
    "data", "synthesize", "generator", "run", "tune", "evaluate", "report", "ui",
    "radiomics", "reader_study", "perf", "demo", "generators", "scorecard",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tumorbench",
        description="Benchmark tumor synthesis (real vs Hu et al. vs DiffTumor) for 3D CT segmentation.",
        epilog="Run `tumorbench <command> --help` for each command. Set TUMORBENCH_DEBUG=1 for tracebacks.",
    )
    parser.add_argument("--version", action="version", version="tumorbench 0.1.0")
    subparsers = parser.add_subparsers(dest="command", metavar="<command>")
    for name in SUBCOMMANDS:
        try:
            module = import_module(f"benchmark.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"benchmark.cli.{name}":
                raise
            continue  # subcommand not built yet
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    # MLflow draws one progress bar per artifact download (the report fetches hundreds of small
    # summary.json files); tumorbench shows its own per-stage bars instead. A user's setting wins.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return run_entry(args.func, args)


def run_entry(func, args) -> int:
    """Call an entry; user-input errors become one line on stderr and exit code 2."""
    from benchmark.errors import InputError
    from synthesis.errors import SynthesisInputError

    try:
        return int(func(args) or 0)
    except (InputError, SynthesisInputError, FileNotFoundError) as exc:
        if os.environ.get("TUMORBENCH_DEBUG"):
            raise
        print(f"tumorbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tumorbench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
