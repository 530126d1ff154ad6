"""`tumorbench scorecard`: realism, fidelity, engineering and downstream value of generators, as cards."""
from __future__ import annotations

import argparse

EPILOG = """examples:
  # the three built-in generators on a liver dataset (DiffTumor needs its weights)
  tumorbench scorecard hu difftumor cellular --dataset data/liver --checkpoint liver=ckpt/liver --out results/cards

  # a plug-in on three organs, quick profile, with the downstream value from a finished grid
  tumorbench scorecard sphere --dataset data/liver --dataset data/kidney --dataset data/pancreas \\
      --downstream grids/paper.toml --quick --out results/cards

  # generator options: --generator-arg NAME.KEY=JSON (per generator, all organs)
  tumorbench scorecard difftumor --dataset data/liver --checkpoint liver=ckpt/liver \\
      --generator-arg 'difftumor.blur_sigma_mm=[0, 4]'

outputs (in --out, replaced atomically): leaderboard.html (every card side by side, sortable),
scorecards.json, and per generator and organ <generator>/<organ>/scorecard.json, card.html,
fidelity.csv, img/fidelity.png; radiomics crops under _work/. Also an MLflow run tagged
tumorbench.kind=scorecard (artifacts: the cards and the leaderboard) in --experiment.

exit codes: 0 all scored; 2 bad input (nothing written); 3 a generator was REFUSED (its engineering
checks failed: e.g. it reports tumors with an empty mask): its card says REFUSED with the reasons
and carries no score, the others are scored, and the reasons are printed."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "scorecard", help="score generators: realism, fidelity, engineering, downstream value",
        description=("Score tumor generators against the real tumors of a dataset (training cases of --fold only) "
                     "and write one HTML card per generator and organ plus a leaderboard (docs/scorecard.md)."),
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("generators", nargs="+", metavar="GENERATOR", help="registered generator names (hu, difftumor, "
                        "cellular, plug-ins: `tumorbench generators list`)")
    parser.add_argument("--dataset", action="append", required=True, metavar="DS",
                        help="canonical dataset folder (one organ each); repeat for several organs")
    parser.add_argument("--organ", action="append", default=None,
                        help="only the datasets of this organ (repeatable; default: every --dataset)")
    parser.add_argument("--downstream", metavar="GRID", default=None,
                        help="grid TOML or MLflow experiment whose finished real and generator cells give the "
                             "downstream comparison (read, never trained)")
    parser.add_argument("--out", default="scorecards", help="output folder (default: scorecards)")
    parser.add_argument("--checkpoint", action="append", metavar="ORGAN=DIR", help="generator weights per organ")
    parser.add_argument("--generator-arg", action="append", metavar="NAME.KEY=JSON",
                        help="factory keyword for one generator, value in JSON (e.g. 'sphere.radius_mm=[4, 8]')")
    parser.add_argument("--quick", action="store_true",
                        help="quick profile (the demo's): 8 real tumors, native grid, no permutation p, 3 floor splits, 4 draws")
    parser.add_argument("--draws", type=int, default=None, help="generator calls for the fidelity section (default 40)")
    parser.add_argument("--n", type=int, default=None, help="real tumors for the realism section (default: all)")
    parser.add_argument("--fold", type=int, default=0, help="use this fold's training cases only (default 0)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--jobs", type=int, default=1, help="radiomics extraction processes (default 1)")
    parser.add_argument("--device", default="cpu", help="device for generators (cpu, cuda)")
    parser.add_argument("--experiment", default=None,
                        help="MLflow experiment (default: the --downstream grid's, else tumorbench-scorecards)")
    parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or "
                                                            "sqlite:///mlruns/mlflow.db)")
    parser.set_defaults(func=scorecard_entry)


def scorecard_entry(args) -> int:
    import sys

    from benchmark.scorecard.options import generator_kwargs, select_datasets, settings_from
    from benchmark.scorecard.run import REFUSED_EXIT, run_scorecards

    result = run_scorecards(args.generators, select_datasets(args.dataset, args.organ), args.out,
                            generator_kwargs=generator_kwargs(args.generators, args.dataset, args.checkpoint,
                                                              args.generator_arg, args.device),
                            settings=settings_from(args.quick, args.n, args.draws, args.fold, args.seed, args.jobs),
                            downstream=args.downstream, tracking_uri=args.tracking_uri, experiment=args.experiment)
    def num(value) -> str:
        return "—" if value is None else f"{value:.3f}"

    for card in result.cards:
        h = card.get("headline") or {}
        status = "REFUSED" if card["status"] == "refused" else (
            f"C2ST AUC at matched n {num(h.get('c2st_auc_matched'))} vs floor {num(h.get('c2st_auc_floor'))}; "
            f"fidelity differs in {h.get('fidelity_differs')}/{h.get('fidelity_tests')} quantities")
        print(f"{card['generator']:12s} {card['organ']:9s} {status}")
    print(f"leaderboard: {(result.out / 'leaderboard.html').resolve()}  (MLflow run {result.mlflow_run_id})")
    for key, reasons in result.refused.items():
        print(f"tumorbench: {key} REFUSED: " + "; ".join(reasons), file=sys.stderr)
    return REFUSED_EXIT if result.refused else 0
