"""Evaluation metrics of TumorBench: DSC, NSD, tumor-wise detection, case/folder evaluation.

Conventions (all of them, in one place):
  * Labels: 0 background, 1 organ, 2 tumor. The organ mask is ``labels >= 1`` (organ
    including its tumors, as in LiTS/MSD evaluation); the tumor mask is ``labels == 2``.
  * ``dice``: 2|P∩R| / (|P| + |R|); both masks empty -> 1.0 (nothing to find, nothing
    found), exactly one empty -> 0.0. Hu et al.'s ``cal_dice`` gives NaN for both-empty;
    we never produce NaN.
  * ``surface_dice`` (NSD): DeepMind ``surface-distance`` definition (area-weighted surfels
    on the half-voxel-shifted corner grid, native anisotropic spacing, ``<=`` tolerance),
    tolerance 2 mm for organ and tumor as in Hu et al. and DiffTumor. Equal to
    ``compute_surface_dice_at_tolerance`` within 1e-12 (tested). Both empty -> 1.0 (DeepMind:
    NaN), one empty -> 0.0. See ``benchmark.surface``.
  * Grid: every case is scored on its reference's own grid and spacing (a cell maps its
    predictions back to each case's native grid, nearest; ``benchmark.label_files``).
  * Lesions: 26-connected components, components under ``min_lesion_mm3`` (default 8 mm³)
    ignored on both sides, volume in mm^3, equivalent-sphere radius, radius bins
    0-5/5-10/10-15/15-20/20+ mm, detected = overlaps a kept predicted component, early =
    radius <= 10 mm. See ``benchmark.lesions``.
  * Patient level: a case has a tumor when its reference labels contain any tumor voxel;
    the prediction calls a tumor by the official DiffTumor rule (tumor AND organ at 1 mm,
    3x3x3 erosion, > ``patient_threshold_mm3`` = 70 mm³ left; ``benchmark.patient_detection``).
    Sensitivity = TP / (TP + FN), specificity = TN / (TN + FP), null when undefined.
  * Per-case ``tumor_dsc``/``tumor_nsd`` follow the empty conventions above (a healthy case
    scores 1.0 without a false positive, 0.0 with one), but the means ``mean.tumor_*`` and
    demographic ``tumor_dsc`` average only over cases with a reference tumor.
  * Size-bin and early sensitivities pool lesions over all evaluated cases.
  * Age groups: <50, 50-59, 60-69, 70+ (unknown age: in no age group); sex M / F. A group's
    ``tumor_sensitivity`` (MLflow ``sensitivity_age_*``/``sensitivity_sex_*``) is tumor-wise.
  * Undefined values are ``null`` in ``summary.json`` (never NaN).
"""
from __future__ import annotations

from benchmark.eval_summary import flat_metrics, summarize
from benchmark.evaluate_dirs import evaluate_dirs
from benchmark.evaluation import evaluate_case, evaluate_folder
from benchmark.lesions import (
    EARLY_RADIUS_MM,
    SIZE_BINS,
    detect_lesions,
    equivalent_radius_mm,
    is_early,
    size_bin,
)
from models.overlap import dice
from benchmark.surface import surface_dice

__all__ = [
    "EARLY_RADIUS_MM", "SIZE_BINS", "detect_lesions", "dice", "equivalent_radius_mm", "evaluate_case",
    "evaluate_dirs", "evaluate_folder", "flat_metrics", "is_early", "size_bin", "summarize", "surface_dice",
]
