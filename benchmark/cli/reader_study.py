"""`tumorbench reader-study make|score`: blinded Visual Turing Test kit."""
from __future__ import annotations

import argparse

EPILOG = """examples:
  # 20 real + 20 Hu-synthetic liver tumors, blinded page in study/reader/index.html
  tumorbench reader-study make data/phantom/liver --generators hu --n-real 20 --n-synthetic 20 --seed 1 --out study

  # organ task (seed paper Fig 8A): early tumors as close-ups, the reader names the organ
  tumorbench reader-study make data/liver data/pancreas data/kidney --task organ --n-real 15 --out organ_study

  # score two readers' exported answer sheets; log them for the report of grid "paper_grid"
  tumorbench reader-study score study --answers answers_alice.csv answers_bob.csv --experiment paper_grid

Send only DIR/reader/ to readers (open index.html in a browser; no server needed). Each `make`
draws a new random study id (page header, browser storage key, exported sheets), so two studies
never share answers. DIR/key.csv is
the answer key, DIR/gallery.html shows real and synthetic tumors side by side (not blinded)."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "reader-study", help="Visual Turing Test: make blinded reader pages, score answers",
        description="Visual Turing Test kit: blinded real-vs-synthetic (or organ) reader study and its scoring.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    inner = parser.add_subparsers(dest="reader_study_command", metavar="<make|score>")
    make = inner.add_parser("make", help="write a blinded study (page, cases, key, gallery)",
                            description="Pick real and synthetic tumor cases, shuffle with the seed, write the blinded page.",
                            epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    make.add_argument("datasets", nargs="+", metavar="DATASET", help="canonical dataset folder(s)")
    make.add_argument("--generators", default="hu", help="comma-separated generators for synthetic cases (default: hu)")
    make.add_argument("--checkpoint", action="append", metavar="ORGAN=DIR", help="generator weights per organ")
    make.add_argument("--n-real", type=int, default=20, help="real tumor cases per dataset (default 20)")
    make.add_argument("--n-synthetic", type=int, default=20, help="synthetic cases per dataset (default 20)")
    make.add_argument("--task", choices=["real-vs-synthetic", "organ"], default="real-vs-synthetic")
    make.add_argument("--seed", type=int, default=0, help="seed for tumor choice, synthesis and shuffling")
    make.add_argument("--out", required=True, help="study folder (replaced atomically)")
    make.add_argument("--device", default="cpu", help="device for generators")
    make.set_defaults(func=reader_study_make_entry)
    score = inner.add_parser("score", help="score exported answer CSVs against the key",
                             description="Accuracy, sensitivity/specificity for synthetic tumors and confidence ROC AUC "
                                         "(or per-organ recall), per reader and pooled, for all cases and per generator, "
                                         "organ and size bin, with 95% CIs and tests against chance; reader agreement "
                                         "(Cohen's/Fleiss' kappa). Writes scores.csv, agreement.csv, confusion.csv, "
                                         "scores.png, scores_by_group.png.",
                             epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    score.add_argument("study", metavar="DIR", help="study folder written by `reader-study make`")
    score.add_argument("--answers", nargs="+", required=True, help="answer CSVs exported from the reader page")
    score.add_argument("--out", default=None, help="output folder (default: DIR)")
    score.add_argument("--experiment", default=None,
                       help="also log the scores as an MLflow run (tag tumorbench.kind=reader_study); use the grid's "
                            "experiment so `tumorbench report` shows them with that grid")
    score.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    score.set_defaults(func=reader_study_score_entry)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def reader_study_make_entry(args) -> int:
    from benchmark.realism_collect import parse_checkpoints
    from benchmark.realism_run import make_reader_study

    generators = [g.strip() for g in args.generators.split(",") if g.strip()]
    study = make_reader_study(args.datasets, generators, args.out, n_real=args.n_real, n_synthetic=args.n_synthetic,
                              seed=args.seed, task=args.task, checkpoints=parse_checkpoints(args.checkpoint),
                              device=args.device)
    print(f"{study['n_cases']} blinded cases: open {args.out}/reader/index.html (key: {args.out}/key.csv)")
    return 0


def reader_study_score_entry(args) -> int:
    from benchmark.realism_run import score_reader_study

    table = score_reader_study(args.study, args.answers, args.out, experiment=args.experiment, seed=args.seed)
    table = table[table["group"] == "all"].drop(columns=["group", "level", "ci_method"])
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0
