"""`tumorbench perf <what>`: run one of the performance benchmarks and print its table."""
from __future__ import annotations

from importlib import import_module

from benchmark.perf import PERF_MODULES


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "perf",
        help=f"run a performance benchmark ({', '.join(PERF_MODULES)})",
        description="Performance benchmarks. Each prints a table with a baseline measured in the same run.",
    )
    inner = parser.add_subparsers(dest="perf_what", metavar="<what>")
    for name, summary in PERF_MODULES.items():
        try:
            module = import_module(f"benchmark.perf.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"benchmark.perf.{name}":
                raise
            continue
        sub = inner.add_parser(name, help=summary, description=summary)
        module.add_arguments(sub)
        sub.set_defaults(func=module.run)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
