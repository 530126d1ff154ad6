"""Fidelity of what a generator draws: per-tumor measurements and real-vs-generator two-sample tests.

Every quantity is measured the same way on real and synthetic tumors, from the CT and the label map
a segmentation net would train on (organ 1, tumor 2; a synthetic tumor painted as 2 over the healthy
case's labels). Units are mm and HU, never voxels. Tumors are 26-connected components of >= 8 mm³
(benchmark/lesions.py). Definitions:

- ``radius_mm``: equivalent-sphere radius; ``lesions_per_case`` is a per-case quantity (components
  in a labeled case with a tumor / in one synthesized case).
- ``surface_distance_mm``: distance from the tumor's centre of mass to the organ region's surface
  (organ region = labels > 0, tumors included, as real labels allow), positive inside, negative
  outside: how deep the tumor sits; a tumor bulging out is at most about its radius deep.
- ``exophytic_fraction``: share of the tumor's boundary voxels (6-neighbour outside the tumor) that
  touch background (label 0): 0 for a tumor embedded in the organ, growing as it bulges out. It is
  the label-only definition that reads the same on real tumors (whose organ outline is not known
  apart from the tumor) and synthetic ones.
- ``outside_given_organ``: share of tumor voxels outside the organ mask the generator was given
  (synthetic only; NaN for real tumors, whose healthy organ is unknown).
- ``contrast_hu``: mean HU in the tumor minus mean HU of organ parenchyma (label 1) within
  ``RING_MM`` of it. ``hu_sd`` / ``hu_skewness``: texture of the tumor's HU values.

Tests: two-sided Mann-Whitney U (scipy) per quantity, effect size Cliff's delta (generator minus
real, -1..1, = rank-biserial correlation 2U/(n1 n2) - 1), Holm-adjusted over the card's quantities.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from benchmark.lesions import DEFAULT_MIN_LESION_MM3, equivalent_radius_mm, label_components

RING_MM = 5.0
TUMOR_QUANTITIES = {  # column -> (label, unit)
    "radius_mm": ("equivalent radius", "mm"),
    "surface_distance_mm": ("distance to organ surface", "mm"),
    "exophytic_fraction": ("exophytic fraction (boundary facing outside)", ""),
    "contrast_hu": ("HU contrast to surrounding organ", "HU"),
    "hu_sd": ("tumor HU standard deviation", "HU"),
    "hu_skewness": ("tumor HU skewness", ""),
}
CASE_QUANTITIES = {"lesions_per_case": ("lesions per case", "")}
QUANTITIES = {**TUMOR_QUANTITIES, **CASE_QUANTITIES}
TEST_NAME = "two-sided Mann-Whitney U"
EFFECT_NAME = "Cliff's delta (generator vs real)"


def _grown_box(box: tuple[slice, ...], margin: Sequence[int], shape: Sequence[int]) -> tuple[slice, ...]:
    return tuple(slice(max(0, s.start - m), min(n, s.stop + m)) for s, m, n in zip(box, margin, shape))


def _exophytic_fraction(tumor: np.ndarray, labels: np.ndarray) -> float:
    """Share of boundary voxels of ``tumor`` with a 6-neighbour in background (both arrays padded crops)."""
    from scipy import ndimage

    boundary = tumor & ~ndimage.binary_erosion(tumor, structure=ndimage.generate_binary_structure(3, 1),
                                               border_value=0)
    touches = ndimage.binary_dilation(labels == 0, structure=ndimage.generate_binary_structure(3, 1))
    n_boundary = int(boundary.sum())
    return float((boundary & touches).sum() / n_boundary) if n_boundary else float("nan")


def _surface_distance(region: np.ndarray, centre: np.ndarray, spacing: Sequence[float]) -> float:
    """Signed distance (mm) of voxel ``centre`` to the surface of ``region`` (positive inside)."""
    from scipy import ndimage

    index = tuple(int(round(c)) for c in centre)
    if region[index]:
        return float(ndimage.distance_transform_edt(region, sampling=spacing)[index])
    return -float(ndimage.distance_transform_edt(~region, sampling=spacing)[index])


def measure_tumor(ct: np.ndarray, labels: np.ndarray, tumor: np.ndarray, spacing: Sequence[float],
                  given_organ: np.ndarray | None = None) -> dict[str, float]:
    """The per-tumor quantities of one tumor component (bool mask over the whole volume)."""
    from scipy import ndimage, stats

    n = int(tumor.sum())
    values = ct[tumor].astype(float)
    ring_vox = [int(np.ceil(RING_MM / s)) + 1 for s in spacing]
    box = _grown_box(ndimage.find_objects(tumor.astype(np.uint8))[0], ring_vox, tumor.shape)
    near = ndimage.distance_transform_edt(~tumor[box], sampling=spacing) <= RING_MM
    ring = near & ~tumor[box] & (labels[box] == 1)
    centre = ndimage.center_of_mass(tumor)
    return {
        "radius_mm": float(equivalent_radius_mm(n * float(np.prod(spacing)))),
        "volume_mm3": float(n * float(np.prod(spacing))),
        "surface_distance_mm": _surface_distance(labels > 0, np.asarray(centre), spacing),
        "exophytic_fraction": _exophytic_fraction(np.pad(tumor[box], 1), np.pad(labels[box], 1)),
        "outside_given_organ": (float((tumor & ~given_organ).sum() / n) if given_organ is not None
                                else float("nan")),
        "contrast_hu": float(values.mean() - ct[box][ring].mean()) if ring.any() else float("nan"),
        "hu_sd": float(values.std(ddof=1)) if n > 1 else float("nan"),
        "hu_skewness": float(stats.skew(values)) if n > 2 and values.std() > 0 else 0.0,
    }


def measure_case(ct: np.ndarray, labels: np.ndarray, spacing: Sequence[float], given_organ: np.ndarray | None = None,
                 min_lesion_mm3: float = DEFAULT_MIN_LESION_MM3) -> list[dict[str, float]]:
    """One row per tumor component (label 2, >= ``min_lesion_mm3`` as the evaluation's lesions) of a
    case, each with the case's lesion count."""
    min_voxels = min_lesion_mm3 / float(np.prod(spacing)) * (1 - 1e-9)  # exactly min_lesion_mm3 counts
    component_labels, comps = label_components(labels == 2, min_voxels)
    rows = [measure_tumor(ct, labels, component_labels == index, spacing, given_organ) for index, _, _ in comps]
    for row in rows:
        row["lesions_per_case"] = len(rows)
    return rows


def cliffs_delta(real: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """(Cliff's delta of ``other`` vs ``real``, two-sided Mann-Whitney U p); NaN when a side is empty."""
    from scipy.stats import mannwhitneyu

    real, other = np.asarray(real, float), np.asarray(other, float)
    real, other = real[np.isfinite(real)], other[np.isfinite(other)]
    if len(real) == 0 or len(other) == 0:
        return float("nan"), float("nan")
    if np.ptp(np.concatenate([real, other])) == 0:
        return 0.0, 1.0  # identical constants: no difference, scipy's test is undefined
    result = mannwhitneyu(other, real, alternative="two-sided")
    return float(2.0 * result.statistic / (len(real) * len(other)) - 1.0), float(result.pvalue)


def _summary(values: np.ndarray) -> dict[str, float]:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return {"n": 0, "median": float("nan"), "q1": float("nan"), "q3": float("nan")}
    q1, median, q3 = np.percentile(finite, [25, 50, 75])
    return {"n": int(len(finite)), "median": float(median), "q1": float(q1), "q3": float(q3)}


def compare(real_rows: Any, other_rows: Any) -> list[dict[str, Any]]:
    """One test row per quantity: medians/IQR and n per side, Mann-Whitney p, Cliff's delta, Holm p.

    ``real_rows`` / ``other_rows``: DataFrames of :func:`measure_case` rows with a ``case`` column
    (the per-case quantity is taken once per case).
    """
    from reports.stats import holm

    tests = []
    for column, (label, unit) in QUANTITIES.items():
        if column in CASE_QUANTITIES:
            real = real_rows.groupby("case")[column].first().to_numpy(float)
            other = other_rows.groupby("case")[column].first().to_numpy(float)
        else:
            real, other = real_rows[column].to_numpy(float), other_rows[column].to_numpy(float)
        delta, p = cliffs_delta(real, other)
        tests.append({"quantity": column, "label": label, "unit": unit, "test": TEST_NAME, "effect": EFFECT_NAME,
                      "real": _summary(real), "generator": _summary(other), "cliffs_delta": delta, "p": p})
    for row, adjusted in zip(tests, holm([t["p"] for t in tests])):
        row["p_holm"] = adjusted
    return tests
