"""`tumorbench demo`: the phantom grid end to end (what `make demo` runs)."""
from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the phantom pipeline end to end (data, generators, grid, report)",
        description="Generate seeded phantom CT datasets (liver, pancreas, kidney), train tiny DiffTumor "
        "generators, run the grid 3 organs x UNet x fold 0 x real/hu/difftumor on CPU with MLflow tracking, "
        "then write the HTML report. Everything is cached: a rerun skips finished work.",
        epilog="Example: tumorbench demo --out demo_out   (then: tumorbench ui)",
    )
    parser.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    parser.add_argument("--cases", type=int, default=20, help="phantom cases per organ (default: 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, splits and training (default: 0)")
    parser.add_argument("--epochs", type=int, default=6, help="training epochs per cell (default: 6)")
    parser.add_argument("--iters-per-epoch", type=int, default=10, help="iterations per epoch (default: 10)")
    parser.add_argument("--tracking-uri", default=None,
                        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///mlruns/mlflow.db)")
    parser.set_defaults(func=demo_entry)


def demo_entry(args) -> int:
    from benchmark.demo import format_demo_result, run_demo

    if args.cases < 10:
        from benchmark.errors import InputError

        raise InputError(f"--cases {args.cases}: need at least 10 cases per organ for 5 folds")
    result = run_demo(args.out, cases=args.cases, seed=args.seed, epochs=args.epochs,
                      iters_per_epoch=args.iters_per_epoch, tracking_uri=args.tracking_uri)
    print(format_demo_result(result))
    return 1 if result.cells.get("failed") else 0
