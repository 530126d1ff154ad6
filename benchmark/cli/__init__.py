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

# Subcommand modules (benchmark/cli/<module>.py) in the order of the workflow, as `--help` lists them.
SUBCOMMANDS = [
    "demo", "data", "synthesize", "generators", "run", "tune", "evaluate", "report", "scorecard", "ui",
    "radiomics", "reader_study", "perf",
]
# Commands that were renamed (pre-1.0, no alias): old name -> where it went, said instead of argparse's
# bare "invalid choice".
MOVED = {"generator": "`tumorbench generators train autoencoder|diffusion` and "
                      "`tumorbench generators import-official` (docs/cli.md)"}


def build_parser() -> argparse.ArgumentParser:
    from benchmark import __version__

    parser = argparse.ArgumentParser(
        prog="tumorbench", description=description(),
        epilog="Run `tumorbench <command> --help` for each command. Set TUMORBENCH_DEBUG=1 for tracebacks.",
    )
    parser.add_argument("--version", action="version", version=f"tumorbench {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="<command>")
    for name in SUBCOMMANDS:
        import_module(f"benchmark.cli.{name}").register(subparsers)
    return parser


def description() -> str:
    """The top help's first lines: the regime kinds a grid can name, read from the generator registry
    (entry points only, no factory imported), so an installed plug-in shows up here too."""
    from benchmark.grid import REAL
    from synthesis.registry import BUILTIN, entries

    found = entries()
    builtin = [name for name in BUILTIN if name in found]
    plugins = [f"{name} (from {entry.distribution})" for name, entry in found.items() if name not in BUILTIN]
    return (f"Benchmark tumor synthesis for 3D CT segmentation: does training on synthetic tumors work as well "
            f"as on real ones? A grid's regimes are '{REAL}' (real tumors only), the built-in generators "
            f"{', '.join(builtin)} and the plug-in generators installed here: "
            f"{', '.join(plugins) if plugins else 'none (docs/generators.md)'}. "
            "`tumorbench generators list` describes each.")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in MOVED:
        print(f"tumorbench: error: `tumorbench {argv[0]}` is now {MOVED[argv[0]]}", file=sys.stderr)
        return 2
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
