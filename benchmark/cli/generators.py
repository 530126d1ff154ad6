"""`tumorbench generators list|show NAME`: the registered tumor generators and their metadata."""
from __future__ import annotations

import argparse
import json

EPILOG = """\
examples:
  tumorbench generators list
  tumorbench generators show cellular
  tumorbench generators show hu --json

Generators are entry points of the group 'tumorbench.generators'; a package registers its own in
its pyproject.toml (see docs/generators.md). Each registered name can be a grid regime.
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "generators", help="list the registered tumor generators (built-in and plug-ins)",
        description="Registered tumor generators: name, display name, licence, weights, replay, devices.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    inner = parser.add_subparsers(dest="generators_what", metavar="<list|show>")
    inner.add_parser("list", help="one line per registered generator").set_defaults(func=list_entry)
    show = inner.add_parser("show", help="metadata and keyword arguments of one generator")
    show.add_argument("name", help="registered generator name")
    show.add_argument("--json", action="store_true", help="print the metadata as JSON")
    show.set_defaults(func=show_entry)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _yes(value: bool) -> str:
    return "yes" if value else "no"


def list_entry(args) -> int:
    from synthesis.registry import describe_all

    rows = describe_all()
    print(f"{'name':<12} {'weights':<8} {'replay':<7} {'devices':<9} {'from':<24} display name / licence")
    for row in rows:
        if "error" in row:
            print(f"{row['name']:<12} {'?':<8} {'?':<7} {'?':<9} {row['distribution']:<24} BROKEN: {row['error']}")
            continue
        print(f"{row['name']:<12} {_yes(row['needs_weights']):<8} {_yes(row['replayable']):<7} "
              f"{','.join(row['devices']):<9} {row['distribution']:<24} {row['display_name']} ({row['licence']})")
    return 0


def show_entry(args) -> int:
    from benchmark.errors import InputError
    from synthesis.errors import SynthesisInputError
    from synthesis.registry import describe

    try:
        info = describe(args.name)
    except SynthesisInputError as exc:
        raise InputError(str(exc)) from exc
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key in ("name", "display_name", "description", "licence", "needs_weights", "weights_source",
                "replayable", "devices", "entry_point", "distribution"):
        value = info[key]
        value = _yes(value) if isinstance(value, bool) else ", ".join(value) if isinstance(value, list) else value
        print(f"{key + ':':<16} {value or '-'}")
    print("kwargs (grid: [generators." + info["name"] + "]):")
    for key, spec in info["kwargs"].items():
        default = f" = {spec['default']}" if spec["default"] is not None else ""
        print(f"  {key}{default}" + (f"  -- {spec['help']}" if spec["help"] else ""))
    return 0
