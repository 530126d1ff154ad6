"""Aggregating per-case evaluation records into the summary.json schema (docs/contracts.md).

Conventions are listed in ``benchmark.metrics``. Every undefined value (mean of nothing,
sensitivity without positives) is None, which JSON writes as null.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

from tumorbench_common.cohorts import AGE_GROUPS, EARLY_RADIUS_MM, SEXES, SIZE_BINS, age_group  # noqa: F401 (re-exported)

AGE_METRIC_SUFFIX = {"<50": "lt50", "50-59": "50_59", "60-69": "60_69", "70+": "70p"}


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [float(v) for v in values if v is not None and not math.isnan(v)]
    return sum(kept) / len(kept) if kept else None


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def patient_counts(records: list[dict]) -> dict[str, Any]:
    """Patient-level {"sensitivity", "specificity", "tp", "fn", "tn", "fp"} of case records."""
    tp = sum(1 for r in records if r["has_tumor"] and r["pred_has_tumor"])
    fn = sum(1 for r in records if r["has_tumor"] and not r["pred_has_tumor"])
    tn = sum(1 for r in records if not r["has_tumor"] and not r["pred_has_tumor"])
    fp = sum(1 for r in records if not r["has_tumor"] and r["pred_has_tumor"])
    return {"sensitivity": _ratio(tp, tp + fn), "specificity": _ratio(tn, tn + fp),
            "tp": tp, "fn": fn, "tn": tn, "fp": fp}


def _group(records: list[dict]) -> dict[str, Any]:
    """A demographic group: tumor DSC, tumor-wise sensitivity (the report's Fig 14: the hits
    among the reference lesions of the group's patients) and the patient-level calls."""
    patient = patient_counts(records)
    lesions = [les for r in records for les in r["lesions"]]
    return {
        "n": len(records),
        "tumor_dsc": _mean(r["tumor_dsc"] for r in records if r["has_tumor"]),
        "tumor_sensitivity": _ratio(sum(1 for les in lesions if les["detected"]), len(lesions)),
        "n_lesions": len(lesions),
        "patient_sensitivity": patient["sensitivity"],
        "patient_specificity": patient["specificity"],
    }


def _size_bins(lesions: list[dict]) -> dict[str, dict[str, Any]]:
    bins = {}
    for name, _, _ in SIZE_BINS:
        members = [les for les in lesions if les["size_bin"] == name]
        detected = sum(1 for les in members if les["detected"])
        bins[name] = {"n": len(members), "detected": detected, "sensitivity": _ratio(detected, len(members))}
    return bins


def summarize(records: list[dict]) -> dict[str, Any]:
    """Summary dict from per-case records (``evaluate_case`` output + case_id, age, sex).

    Returns:
        {"metric_per_case", "mean", "size_bins", "early_sensitivity", "n_early", "patient",
         "demographics"}, see docs/contracts.md.
    """
    tumor_cases = [r for r in records if r["has_tumor"]]
    lesions = [les for r in records for les in r["lesions"]]
    early = [les for les in lesions if les["radius_mm"] <= EARLY_RADIUS_MM]
    return {
        "metric_per_case": [_clean(r) for r in records],
        "mean": {
            "organ_dsc": _mean(r["organ_dsc"] for r in records),
            "organ_nsd": _mean(r["organ_nsd"] for r in records),
            "tumor_dsc": _mean(r["tumor_dsc"] for r in tumor_cases),
            "tumor_nsd": _mean(r["tumor_nsd"] for r in tumor_cases),
        },
        "size_bins": _size_bins(lesions),
        "early_sensitivity": _ratio(sum(1 for les in early if les["detected"]), len(early)),
        "n_early": len(early),
        "patient": patient_counts(records),
        "demographics": {
            "age": {name: _group([r for r in records if age_group(r.get("age")) == name])
                    for name, _, _ in AGE_GROUPS},
            "sex": {sex: _group([r for r in records if r.get("sex") == sex]) for sex in SEXES},
        },
    }


def _clean(value: Any) -> Any:
    """Copy with NaN floats replaced by None (JSON null)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def flat_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """MLflow metric names of docs/contracts.md -> values of a cell's own-organ ``summary.json``;
    undefined (null) or absent values are left out. The one place metric names are built.
    ``sensitivity_age_*`` / ``sensitivity_sex_*`` are tumor-wise (hits / reference lesions of the
    group), like the report's Fig 14; the patient-level calls are ``patient_*``."""
    names: dict[str, Any] = dict(summary.get("mean", {}))
    patient = summary.get("patient", {})
    names["patient_sensitivity"] = patient.get("sensitivity")
    names["patient_specificity"] = patient.get("specificity")
    names["early_sensitivity"] = summary.get("early_sensitivity")
    for name, low, high in SIZE_BINS:
        upper = "inf" if math.isinf(high) else f"{high:g}"
        names[f"sens_{low:g}_{upper}"] = summary.get("size_bins", {}).get(name, {}).get("sensitivity")
    demographics = summary.get("demographics", {})
    for group, suffix in AGE_METRIC_SUFFIX.items():
        stats = demographics.get("age", {}).get(group, {})
        names[f"tumor_dsc_age_{suffix}"] = stats.get("tumor_dsc")
        names[f"sensitivity_age_{suffix}"] = stats.get("tumor_sensitivity")  # tumor-wise, as Fig 14
    for sex in SEXES:
        stats = demographics.get("sex", {}).get(sex, {})
        names[f"tumor_dsc_sex_{sex}"] = stats.get("tumor_dsc")
        names[f"sensitivity_sex_{sex}"] = stats.get("tumor_sensitivity")
    return {k: float(v) for k, v in names.items() if v is not None}
