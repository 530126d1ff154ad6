"""`tumorbench evaluate`: score a folder of predictions against a folder of references.

Modelled on nnU-Net's ``evaluate_folder``: files are matched by name (``.nii.gz`` or ``.nii``),
labels are the datasets' (0 background, 1 organ, 2 tumor), and every case is scored on its
reference's own grid and spacing with the same engine and output files as a cell
(`benchmark.evaluation.score_jobs`). Every input problem — a missing or extra file, a
prediction on another grid (unless ``resample``) — is found from the file names and headers
before any case is scored, and nothing is written then.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark.errors import InputError
from benchmark.evaluation import ScoringJob, ScoringSettings, score_jobs
from benchmark.label_files import check_same_grid, read_geometry

ORGANS = ("liver", "pancreas", "kidney")
SUFFIXES = (".nii.gz", ".nii")


def label_files(folder: Path, what: str) -> dict[str, Path]:
    """case id (file name without .nii.gz / .nii) -> path of every label file in ``folder``."""
    if not folder.is_dir():
        raise InputError(f"{folder}: {what} folder not found")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        suffix = next((s for s in SUFFIXES if path.name.endswith(s)), None)
        if suffix is None or not path.is_file() or path.name.startswith("."):
            continue
        case_id = path.name[: -len(suffix)]
        if case_id in found:
            raise InputError(f"{path}: case {case_id!r} appears twice in {folder} ({found[case_id].name})")
        found[case_id] = path
    if not found:
        raise InputError(f"{folder}: no {what} files (*.nii.gz or *.nii)")
    return found


def _match(preds: dict[str, Path], refs: dict[str, Path], pred_dir: Path, ref_dir: Path) -> list[str]:
    missing = sorted(set(refs) - set(preds))
    extra = sorted(set(preds) - set(refs))
    if missing:
        raise InputError(f"{pred_dir}: no prediction for {len(missing)} reference file(s) of {ref_dir}: "
                         f"{', '.join(refs[c].name for c in missing[:5])}{' ...' if len(missing) > 5 else ''}")
    if extra:
        raise InputError(f"{pred_dir}: {len(extra)} prediction file(s) without a reference in {ref_dir}: "
                         f"{', '.join(preds[c].name for c in extra[:5])}{' ...' if len(extra) > 5 else ''}")
    return sorted(refs)


def _check_grids(case_ids: list[str], preds: dict[str, Path], refs: dict[str, Path], resample: bool) -> None:
    """Read every header before any work: unreadable files and (without ``resample``) grid
    mismatches fail here."""
    for case_id in case_ids:
        pred, ref = read_geometry(preds[case_id], "prediction"), read_geometry(refs[case_id], "reference labels")
        if not resample:
            check_same_grid(preds[case_id], pred, refs[case_id], ref)


def evaluate_dirs(pred_dir, ref_dir, organ: str, out, resample: bool = False, progress: bool = True,
                  workers: int = 1, **settings) -> dict[str, Any]:
    """Score ``pred_dir/<name>`` against ``ref_dir/<name>`` for every reference file.

    Args:
        pred_dir, ref_dir: folders of 0/1/2 label NIfTI files with the same names.
        organ: the organ the labels mean (liver | pancreas | kidney), recorded in summary.json.
        out: output folder: summary.json, per_case.csv, per_lesion.csv (same files as a cell).
        resample: map a prediction on another grid onto its reference's grid (nearest) instead of
            failing; each such case has ``resampled_from`` set and the summary counts them.
        settings: `benchmark.evaluation.ScoringSettings` fields.

    Raises:
        InputError: missing/extra/unreadable files, labels other than 0/1/2, a grid mismatch
            without ``resample`` (naming the file and both geometries); nothing is written.
    """
    if organ not in ORGANS:
        raise InputError(f"--organ {organ!r}: expected one of {list(ORGANS)}")
    pred_dir, ref_dir = Path(pred_dir), Path(ref_dir)
    preds, refs = label_files(pred_dir, "prediction"), label_files(ref_dir, "reference")
    case_ids = _match(preds, refs, pred_dir, ref_dir)
    _check_grids(case_ids, preds, refs, resample)
    jobs = [ScoringJob(c, preds[c], refs[c], resample=resample) for c in case_ids]
    return score_jobs(jobs, Path(out) / "summary.json", ScoringSettings(**settings), progress, workers,
                      extra={"organ": organ, "pred_dir": str(pred_dir.resolve()), "ref_dir": str(ref_dir.resolve())})


def report_line(summary: dict[str, Any], out) -> str:
    """A few lines for the terminal: what was scored where, the headline numbers, the files."""
    scoring, mean, patient = summary["scoring"], summary["mean"], summary["patient"]
    lesions = [les for case in summary["metric_per_case"] for les in case["lesions"]]

    def num(value) -> str:
        return "—" if value is None else f"{value:.3f}"

    resampled = scoring["resampled_predictions"]
    lines = [
        f"{len(summary['metric_per_case'])} cases scored on the reference grids"
        + (f"; {resampled} predictions resampled (nearest) onto them" if resampled else "; no prediction resampled"),
        f"organ DSC {num(mean['organ_dsc'])}  NSD {num(mean['organ_nsd'])}   tumor DSC {num(mean['tumor_dsc'])}  "
        f"NSD {num(mean['tumor_nsd'])} (cases with a tumor)",
        f"lesions detected {sum(les['detected'] for les in lesions)}/{len(lesions)} (>= {scoring['min_lesion_mm3']:g} mm3); "
        f"patient TP {patient['tp']} FN {patient['fn']} TN {patient['tn']} FP {patient['fp']} "
        f"(th {scoring['patient_threshold_mm3']:g} mm3)",
        f"wrote {Path(out) / 'summary.json'}, per_case.csv, per_lesion.csv",
    ]
    return "\n".join(lines)
