"""`tumorbench demo`: the phantom grid end to end (what `make demo` runs)."""
from __future__ import annotations


def register(subparsers) -> None:
    from benchmark.demo import DemoSettings

    d = DemoSettings()
    parser = subparsers.add_parser(
        "demo",
        help="run the phantom pipeline end to end (data, grid, report)",
        description="Generate seeded 3 mm phantom CT datasets (liver, pancreas, kidney), run the grid 3 organs x "
        "tiny U-Net x fold 0 x real/hu/difftumor on CPU with MLflow tracking (the tiny DiffTumor generators "
        "are shipped in benchmark/demo_weights), print per cell organ DSC, tumor DSC and specificity and the "
        "early-tumor contrast of real vs DiffTumor tumors, then write the HTML report. Everything is cached: "
        "a rerun skips finished work.",
        epilog="Example: tumorbench demo --out demo_out   (then: tumorbench ui)",
    )
    parser.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    parser.add_argument("--cases", type=int, default=d.cases, help=f"phantom cases per organ (default: {d.cases})")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"seed of data, splits and training (default: {d.seed})")
    parser.add_argument("--epochs", type=int, default=d.epochs, help=f"training epochs per cell (default: {d.epochs})")
    parser.add_argument("--iters-per-epoch", type=int, default=d.iters_per_epoch,
                        help=f"iterations per epoch (default: {d.iters_per_epoch})")
    parser.add_argument("--max-parallel", type=int, default=d.max_parallel,
                        help=f"cells trained at once (default: {d.max_parallel})")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db)")
    parser.add_argument("--no-scorecards", action="store_true",
                        help="skip the generators' quick scorecards (docs/scorecard.md) and the report's links to them")
    parser.add_argument("--make-generators", metavar="DIR", default=None,
                        help="only make the demo phantom (under --out) and train the tiny DiffTumor generators on "
                        "its fold-0 training cases into DIR: the command that wrote benchmark/demo_weights")
    parser.set_defaults(func=demo_entry)


def demo_entry(args) -> int:
    from pathlib import Path

    from benchmark.demo import DemoSettings, format_demo_result, make_phantoms, run_demo
    from benchmark.errors import InputError

    if args.cases < 10:
        raise InputError(f"--cases {args.cases}: need at least 10 cases per organ for 5 folds")
    for name in ("epochs", "iters_per_epoch", "max_parallel"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} {getattr(args, name)}: expected an integer >= 1")
    settings = DemoSettings(cases=args.cases, seed=args.seed, epochs=args.epochs,
                            iters_per_epoch=args.iters_per_epoch, max_parallel=args.max_parallel,
                            scorecards=not args.no_scorecards)
    if args.make_generators:
        from benchmark.demo_generators import train_demo_generators

        make_phantoms(Path(args.out).resolve(), settings)
        print(train_demo_generators(Path(args.out).resolve() / "phantom", Path(args.make_generators)))
        return 0
    result = run_demo(args.out, settings, tracking_uri=args.tracking_uri)
    print(format_demo_result(result))
    return 1 if result.cells.get("failed") else 0
