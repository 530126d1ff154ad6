"""`tumorbench data`: phantom datasets, importers, integrity check, splits, summary."""
from __future__ import annotations

import argparse

FORMATS_HELP = """\
source layouts (--format):
  msd    Task03_Liver / Task07_Pancreas: dataset.json, imagesTr/*.nii.gz, labelsTr/*.nii.gz
  lits   volume-N.nii + segmentation-N.nii (any sub-folders); 1 liver, 2 tumor
  kits   case_XXXXX/imaging.nii.gz + segmentation.nii.gz (KiTS19/23) or aggregated_MAJ_seg.nii.gz
         (KiTS21); 1 kidney, 2 tumor, 3 cyst -> kidney
  atlas  BDMAP_*/ct.nii.gz + segmentations/<organ>.nii.gz (kidney_left + kidney_right); healthy
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "data", help="make, import, check, split and summarise datasets",
        description="Datasets in the canonical layout (dataset.json, cases.csv, cases/<id>/ct.nii.gz + "
                    "labels.nii.gz, splits.json). See docs/data.md.",
        epilog="examples:\n  tumorbench data phantom --out data/phantom --organ all --cases 24 --seed 0\n"
               "  tumorbench data import --format msd Task03_Liver --organ liver --out data/liver\n"
               "  tumorbench data check data/phantom/liver\n  tumorbench data summary data/phantom/liver",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    inner = parser.add_subparsers(dest="data_command", metavar="<action>")
    _add_phantom(inner)
    _add_import(inner)
    check = inner.add_parser("check", help="validate a dataset (exit 2 and a problem list on errors)",
                             description="Check files, grids, HU, label values, organ/tumor consistency, "
                                         "cases.csv and splits.json.")
    check.add_argument("dataset", help="dataset folder")
    check.set_defaults(func=check_entry)
    splits = inner.add_parser("splits", help="write splits.json (5 patient-level folds) if missing",
                              description="Stratified (role, has_tumor) patient-level folds, each with an "
                                          "inner validation fifth of its training cases; an existing "
                                          "splits.json is kept (inner_val added if missing) unless --force.",
                              epilog="example: tumorbench data splits data/liver --from-official "
                                     "DiffTumor/STEP3.SegmentationModel/cross_eval/liver_aug_data_fold")
    splits.add_argument("dataset", help="dataset folder")
    splits.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    splits.add_argument("--seed", type=int, default=12345, help="shuffle seed (default 12345)")
    splits.add_argument("--force", action="store_true", help="overwrite an existing splits.json")
    splits.add_argument("--from-official", metavar="DIR", dest="official",
                        help="folder of the DiffTumor repository's real_tumor_{train,val}_<k>.txt fold lists "
                             "(same folds as the paper)")
    splits.set_defaults(func=splits_entry)
    summary = inner.add_parser("summary", help="print a table of cases, tumors, grid and demographics")
    summary.add_argument("dataset", help="dataset folder")
    summary.set_defaults(func=summary_entry)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _add_phantom(inner) -> None:
    sub = inner.add_parser(
        "phantom", help="generate a seeded synthetic abdominal CT dataset",
        description="Seeded phantom CTs (body wall, bowel, liver, spleen, pancreas, kidneys, vessels, spine) "
                    "with tumors in the chosen organ for a share of cases. Same seed -> identical files.",
        epilog="example: tumorbench data phantom --out data/phantom --organ all --cases 24 --seed 0")
    sub.add_argument("--out", required=True, help="new dataset folder (--organ all: out/liver, out/pancreas, out/kidney)")
    sub.add_argument("--organ", required=True, choices=["liver", "pancreas", "kidney", "all"])
    sub.add_argument("--cases", type=int, default=24, help="cases per organ (default 24, at least 5)")
    sub.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sub.add_argument("--spacing", type=float, nargs=3, metavar=("SX", "SY", "SZ"), help="mm (default 2 2 2)")
    sub.add_argument("--shape", type=int, nargs=3, metavar=("NX", "NY", "NZ"),
                     help="voxels (default: 224x192x144 mm field of view, 112 96 72 at 2 mm)")
    sub.add_argument("--tumor-fraction", type=float, default=0.6, help="share of cases with tumors (default 0.6)")
    sub.add_argument("--workers", type=int, default=1,
                     help="parallel processes (0 = one per CPU; default 1); files are identical for any value")
    sub.set_defaults(func=phantom_entry)


def _add_import(inner) -> None:
    sub = inner.add_parser(
        "import", help="import MSD / LiTS / KiTS / AbdomenAtlas data",
        description="Reorient to RAS, resample (CT linear, labels nearest), map labels to 0/1/2, write the "
                    "canonical layout atomically and make splits.",
        epilog=FORMATS_HELP + "\nexamples:\n  tumorbench data import --format msd Task03_Liver --organ liver --out data/liver\n"
               "  tumorbench data import --format atlas AbdomenAtlas --organ liver --out data/liver --append\n",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub.add_argument("src", help="source folder in the original layout")
    sub.add_argument("--format", required=True, choices=["msd", "lits", "kits", "atlas"], dest="fmt")
    sub.add_argument("--organ", required=True, choices=["liver", "pancreas", "kidney"])
    sub.add_argument("--out", required=True, help="dataset folder to create (or extend with --append)")
    sub.add_argument("--spacing", type=float, nargs=3, default=[1.0, 1.0, 1.0], metavar=("SX", "SY", "SZ"),
                     help="target voxel size in mm (default 1 1 1, as in the papers)")
    sub.add_argument("--demographics", help="CSV with case_id,age,sex merged into cases.csv")
    sub.add_argument("--append", action="store_true",
                     help="add cases to an existing dataset of the same organ/spacing (rebuilds splits.json)")
    sub.add_argument("--name", help="dataset name (default <format>_<organ>)")
    sub.add_argument("--max-cases", type=int, metavar="N",
                     help="import a seeded random subset of N cases (e.g. the paper's healthy-CT counts)")
    sub.add_argument("--seed", type=int, default=0, help="seed of the --max-cases subset (default 0)")
    sub.add_argument("--assume-healthy", action="store_true",
                     help="atlas: accept CTs without a lesion mask file as healthy (default: an error)")
    sub.add_argument("--against", nargs="+", default=[], metavar="DATASET",
                     help="more imported datasets whose labeled CTs no healthy CT may be (the datasets next to "
                          "--out are always checked); see docs/data.md, 'The healthy pool'")
    sub.set_defaults(func=import_entry)


def phantom_entry(args) -> int:
    from benchmark.data.commands import phantom_with_summary

    print(phantom_with_summary(args.out, args.organ, args.cases, args.seed, shape=args.shape,
                               spacing=args.spacing, tumor_fraction=args.tumor_fraction, workers=args.workers))
    return 0


def import_entry(args) -> int:
    from benchmark.data.commands import import_with_summary

    print(import_with_summary(args.fmt, args.src, args.organ, args.out, spacing=args.spacing,
                              demographics=args.demographics, append=args.append, name=args.name,
                              max_cases=args.max_cases, seed=args.seed, assume_healthy=args.assume_healthy,
                              against=tuple(args.against)))
    return 0


def check_entry(args) -> int:
    from benchmark.data.commands import check_report

    print(check_report(args.dataset))
    return 0


def splits_entry(args) -> int:
    from benchmark.data.commands import splits_report

    print(splits_report(args.dataset, n_folds=args.folds, seed=args.seed, force=args.force,
                        official=args.official))
    return 0


def summary_entry(args) -> int:
    from benchmark.data.summary import summarize_dataset

    print(summarize_dataset(args.dataset))
    return 0
