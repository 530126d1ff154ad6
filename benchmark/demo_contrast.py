"""How dark the demo's early tumors are: real phantom tumors vs the tiny DiffTumor generator's.

Contrast of a tumor = mean HU inside it minus mean HU of the organ (label 1, no tumor) in a shell
around it (from one voxel to one voxel + ``SHELL_MM`` outside its surface), so partial volume at
the edge counts for neither. Real early tumors: the 26-connected tumor components with an
equivalent radius <= 10 mm (the evaluation's "early") of the labeled training cases. Synthetic
ones: one early (tiny or small) tumor per healthy training case, painted on the organ crop.
Only fold ``fold``'s training cases are read: the test fold is for the report alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

SHELL_MM = 6.0
EARLY_SIZES = ("tiny", "small")


@dataclass(frozen=True)
class Contrast:
    """Contrasts (HU) of ``n`` tumors of one organ and source: signed mean and spread, and the mean
    magnitude, which is what the real-vs-synthetic gap compares (a generator may paint tumors both
    darker and brighter than the organ, and a signed mean would let those cancel out)."""

    organ: str
    source: str
    n: int
    mean_hu: float
    sd_hu: float
    mean_abs_hu: float


def tumor_contrast(ct: np.ndarray, tumor: np.ndarray, organ: np.ndarray, spacing: Sequence[float]) -> float | None:
    """Mean HU in ``tumor`` minus mean HU of ``organ`` voxels in the shell around it (None: no shell)."""
    from scipy import ndimage

    tumor = np.asarray(tumor, bool)
    if not tumor.any():
        return None
    distance = ndimage.distance_transform_edt(~tumor, sampling=spacing)
    step = float(max(spacing))
    shell = np.asarray(organ, bool) & ~tumor & (distance > step) & (distance <= step + SHELL_MM)
    if not shell.any():
        return None
    return float(ct[tumor].mean() - ct[shell].mean())


def _summary(organ: str, source: str, values: list[float]) -> Contrast:
    arr = np.asarray(values, float)
    if arr.size == 0:
        return Contrast(organ, source, 0, float("nan"), float("nan"), float("nan"))
    return Contrast(organ, source, int(arr.size), float(arr.mean()), float(arr.std()), float(np.abs(arr).mean()))


def gap_hu(synthetic: Contrast, real: Contrast) -> float:
    """How far the synthetic tumors' mean contrast magnitude is from the real ones' (HU)."""
    return abs(synthetic.mean_abs_hu - real.mean_abs_hu)


def real_early_contrast(dataset: Any, case_ids: Sequence[str]) -> Contrast:
    """Contrast of every real early tumor (radius <= 10 mm) in the labeled ``case_ids``."""
    from benchmark.realism_collect import load_case
    from benchmark.realism_crops import EARLY_RADIUS_MM, components, equivalent_radius

    values = []
    for case_id in case_ids:
        ct, labels = load_case(dataset, case_id)
        for comp in components(labels == 2, min_voxels=1):
            if equivalent_radius(int(comp.sum()), dataset.spacing) <= EARLY_RADIUS_MM:
                value = tumor_contrast(ct, comp, labels == 1, dataset.spacing)
                values += [] if value is None else [value]
    return _summary(dataset.organ, "real", values)


def synthetic_early_contrast(dataset: Any, case_ids: Sequence[str], generator_kwargs: Mapping[str, Any],
                             name: str = "difftumor", seed: int = 0) -> Contrast:
    """Contrast of one early tumor per healthy ``case_ids`` (tiny and small alternating)."""
    from benchmark.realism_collect import load_case, synthesize_on_case
    from synthesis.registry import make_generator

    rng = np.random.default_rng(seed)
    makers = {size: make_generator(name, dataset.organ, size_probs={s: float(s == size) for s in
                                                                     ("tiny", "small", "medium", "large")},
                                   **generator_kwargs) for size in EARLY_SIZES}
    values = []
    for k, case_id in enumerate(case_ids):
        ct, labels = load_case(dataset, case_id)
        ct_out, tumor = synthesize_on_case(makers[EARLY_SIZES[k % 2]], ct, labels, dataset.spacing, rng)
        value = tumor_contrast(ct_out, tumor, (labels >= 1) & ~tumor, dataset.spacing)
        values += [] if value is None else [value]
    return _summary(dataset.organ, name, values)


def early_contrasts(dataset_dir, generator_kwargs: Mapping[str, Any], fold: int = 0, seed: int = 0) -> list[Contrast]:
    """(real, difftumor) early-tumor contrasts of one organ's dataset, on fold ``fold``'s training cases."""
    from benchmark.data import Dataset

    dataset = Dataset.open(dataset_dir)
    train_ids = set(dataset.fold(fold)[0])
    labeled = [c for c in dataset.case_ids("labeled") if c in train_ids]
    healthy = [c for c in dataset.case_ids("healthy") if c in train_ids]
    return [real_early_contrast(dataset, labeled),
            synthetic_early_contrast(dataset, healthy, generator_kwargs, seed=seed)]


def format_contrasts(contrasts: Sequence[Contrast]) -> str:
    """Terminal table: organ, source, n, signed mean +/- sd, mean |contrast| and the gap to real."""
    lines = ["  early tumors (radius <= 10 mm): contrast to the surrounding organ, HU (fold-0 training cases)",
             f"    {'organ':<9} {'source':<10} {'n':>3} {'mean +/- sd':>15} {'mean |c|':>9} {'gap to real':>12}"]
    real = {c.organ: c for c in contrasts if c.source == "real"}
    for c in contrasts:
        gap = "" if c.source == "real" or c.organ not in real else f"{gap_hu(c, real[c.organ]):12.1f}"
        lines.append(f"    {c.organ:<9} {c.source:<10} {c.n:>3} {c.mean_hu:7.1f} +/- {c.sd_hu:4.1f} "
                     f"{c.mean_abs_hu:9.1f} {gap}")
    return "\n".join(lines)
