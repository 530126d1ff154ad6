"""`tumorbench reader-study make|serve|export|score`: blinded Visual Turing Test kit."""
from __future__ import annotations

import argparse

EPILOG = """examples:
  # 20 real + 20 Hu-synthetic liver tumors, blinded page in study/reader/index.html
  tumorbench reader-study make data/phantom/liver --generators hu --n-real 20 --n-synthetic 20 --seed 1 --out study

  # organ task (seed paper Fig 8A): early tumors as close-ups, the reader names the organ
  tumorbench reader-study make data/liver data/pancreas data/kidney --task organ --n-real 15 --out organ_study

  # recommended: serve the page on 127.0.0.1; every answer is saved in study/answers.sqlite when given
  tumorbench reader-study serve study --port 8765
  # a reader on another machine forwards the port over SSH, then opens the printed URL there:
  #   ssh -N -L 8765:127.0.0.1:8765 you@study-host

  # every reader's answers as study/answers/answers_<reader>.csv; score them (and log to grid "paper_grid")
  tumorbench reader-study export study
  tumorbench reader-study score study --answers study/answers/*.csv --experiment paper_grid

Fallback without a server: send DIR/reader/ and have readers open index.html from file:// (answers
stay in the browser's localStorage, which can lose the latest ones: readers export often and send the
CSV). Each `make` draws a new random study id (page header, storage key, sheets), so two studies never
share answers. DIR/key.csv is the answer key, DIR/gallery.html shows real and synthetic tumors side by
side (not blinded)."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "reader-study", help="Visual Turing Test: make blinded reader pages, serve them, score answers",
        description="Visual Turing Test kit: blinded real-vs-synthetic (or organ) reader study, a 127.0.0.1 server that "
                    "saves every answer when given, and its scoring.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    inner = parser.add_subparsers(dest="reader_study_command", metavar="<make|serve|export|score>")
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
    _add_serve_export(inner)
    score = _study_command(inner, "score", "score exported answer CSVs against the key",
                           "Accuracy, sensitivity/specificity for synthetic tumors and confidence ROC AUC "
                           "(or per-organ recall), per reader and pooled, for all cases and per generator, "
                           "organ and size bin, with 95% CIs and tests against chance; reader agreement "
                           "(Cohen's/Fleiss' kappa). Writes scores.csv, agreement.csv, confusion.csv, "
                           "scores.png, scores_by_group.png.")
    score.add_argument("--answers", nargs="+", required=True, help="answer CSVs exported from the reader page or by `reader-study export`")
    score.add_argument("--out", default=None, help="output folder (default: DIR)")
    score.add_argument("--experiment", default=None,
                       help="also log the scores as an MLflow run (tag tumorbench.kind=reader_study); use the grid's "
                            "experiment so `tumorbench report` shows them with that grid")
    score.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    score.set_defaults(func=reader_study_score_entry)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _study_command(inner, name: str, help: str, description: str):  # noqa: A002 (argparse's word)
    """A `reader-study NAME DIR` subcommand with the shared examples."""
    command = inner.add_parser(name, help=help, description=description, epilog=EPILOG,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    command.add_argument("study", metavar="DIR", help="study folder written by `reader-study make`")
    return command


def _add_serve_export(inner) -> None:
    serve = _study_command(
        inner, "serve", "serve the reader page on 127.0.0.1, saving every answer when given",
        "Serve DIR/reader/ on 127.0.0.1 only, behind a per-study secret token in the URL (kept in "
        "DIR/server_token; requests without it get 403). Every answer is committed to an sqlite file "
        "before the page is told it is saved; a reader who reloads, or comes back in another browser "
        "with the same name, resumes at the case where they stopped. Readers are kept apart by name. "
        "For a remote reader use SSH port forwarding; the server never listens on other addresses.")
    serve.add_argument("--port", type=int, default=8765, help="TCP port on 127.0.0.1 (default 8765; 0: any free port)")
    serve.add_argument("--db", default=None, metavar="FILE", help="answers database (default DIR/answers.sqlite)")
    serve.set_defaults(func=reader_study_serve_entry)
    export = _study_command(
        inner, "export", "write each reader's served answers as a CSV sheet for `score`",
        "Write answers_<reader>.csv (study_id,reader,case_id,answer,confidence,answered_at: the format of "
        "the page's own export) for every reader in the answers database, for `reader-study score`.")
    export.add_argument("--db", default=None, metavar="FILE", help="answers database (default DIR/answers.sqlite)")
    export.add_argument("--out", default=None, help="folder for the sheets (default DIR/answers)")
    export.set_defaults(func=reader_study_export_entry)


def reader_study_serve_entry(args) -> int:
    from reports.reader_study.server import serve

    serve(args.study, port=args.port, db=args.db, announce=lambda text: print(text, flush=True))
    return 0


def reader_study_export_entry(args) -> int:
    from reports.reader_study.server import export_study

    sheets = export_study(args.study, db=args.db, out_dir=args.out)
    print("\n".join(map(str, sheets)) if sheets else "no reader has answered yet")
    return 0


def reader_study_make_entry(args) -> int:
    from benchmark.realism_collect import parse_checkpoints
    from benchmark.realism_run import make_reader_study

    generators = [g.strip() for g in args.generators.split(",") if g.strip()]
    study = make_reader_study(args.datasets, generators, args.out, n_real=args.n_real, n_synthetic=args.n_synthetic,
                              seed=args.seed, task=args.task, checkpoints=parse_checkpoints(args.checkpoint),
                              device=args.device)
    print(f"{study['n_cases']} blinded cases: `tumorbench reader-study serve {args.out}` serves them (fallback: "
          f"open {args.out}/reader/index.html from file://; key: {args.out}/key.csv)")
    return 0


def reader_study_score_entry(args) -> int:
    from benchmark.realism_run import score_reader_study

    table = score_reader_study(args.study, args.answers, args.out, experiment=args.experiment, seed=args.seed)
    table = table[table["group"] == "all"].drop(columns=["group", "level", "ci_method"])
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return 0
