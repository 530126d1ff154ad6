"""`tumorbench evaluate`: score a folder of predictions against a folder of reference labels."""
from __future__ import annotations

import argparse

DESCRIPTION = """\
Score predictions against references the way a grid cell does (nnU-Net's evaluate_folder is the
model). Files are matched by name (PRED_DIR/x.nii.gz <-> REF_DIR/x.nii.gz; .nii also accepted);
labels 0 background, 1 organ, 2 tumor. Every case is scored on the REFERENCE's own grid and
spacing: organ/tumor DSC, NSD at 2 mm, tumor-wise detection (26-connected lesions of at least
--min-lesion-mm3, hit = any overlap, radius size bins) and the official patient-level call
(tumor AND organ at 1 mm, 3x3x3 erosion, positive if > --patient-threshold-mm3 remain).
A prediction whose grid (shape, affine, spacing) differs from its reference is an error naming
both grids, unless --resample maps it onto the reference grid (nearest neighbour)."""

EPILOG = """\
writes OUT_DIR/summary.json, OUT_DIR/per_case.csv, OUT_DIR/per_lesion.csv (the files a cell writes;
summary.json's "scoring" says the settings and how many predictions were resampled).

examples:
  tumorbench evaluate preds/ labelsTs/ --organ liver --out scores/
  tumorbench evaluate preds_1mm/ labels_native/ --organ kidney --out scores/ --resample
  tumorbench evaluate preds/ refs/ --organ liver --out scores/ --patient-threshold-mm3 30

see docs/metrics.md for every rule and where it differs from the paper."""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score a folder of predictions against reference labels (summary.json + CSVs)",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pred_dir", metavar="PRED_DIR", help="folder of predicted label files (uint 0/1/2)")
    parser.add_argument("ref_dir", metavar="REF_DIR", help="folder of reference label files, same file names")
    parser.add_argument("--organ", required=True, choices=["liver", "pancreas", "kidney"],
                        help="organ the labels 1/2 belong to (recorded in summary.json)")
    parser.add_argument("--out", required=True, metavar="OUT_DIR", help="output folder (created if missing)")
    parser.add_argument("--resample", action="store_true",
                        help="map predictions on another grid onto the reference grid (nearest) instead of failing")
    parser.add_argument("--tolerance-mm", type=float, default=2.0, help="NSD tolerance in mm (default %(default)s)")
    parser.add_argument("--min-lesion-mm3", type=float, default=8.0,
                        help="smallest lesion counted, reference and prediction, in mm^3 (default %(default)s: "
                             "DiffTumor's 8 voxels at 1 mm)")
    parser.add_argument("--patient-threshold-mm3", type=float, default=70.0,
                        help="official patient rule's th in mm^3 (default %(default)s, the official argparse "
                             "default; the official README example uses 30)")
    parser.add_argument("--workers", type=int, default=1, help="processes scoring cases in parallel (default 1)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(func=evaluate_entry)


def evaluate_entry(args) -> int:
    from benchmark.evaluate_dirs import evaluate_dirs, report_line

    summary = evaluate_dirs(args.pred_dir, args.ref_dir, args.organ, args.out, resample=args.resample,
                            progress=not args.no_progress, workers=args.workers, tolerance_mm=args.tolerance_mm,
                            min_lesion_mm3=args.min_lesion_mm3, patient_threshold_mm3=args.patient_threshold_mm3)
    print(report_line(summary, args.out))
    return 0
