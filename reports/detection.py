"""Fig 10 (detection by tumor size, patient-level), Fig 14 (demographics) and Fig 16 (hardest
cases) tables. Counts are pooled over test folds from the per-case / per-lesion records (test folds
are disjoint, so pooling covers every case once); every proportion has a 95 % CI and its n: lesion-level
proportions a patient-clustered one (``records.lesion_proportion``), patient-level ones Wilson's."""
from __future__ import annotations

import pandas as pd

from reports import plan
from reports.bootstrap import N_BOOT
from reports.loader import GridData
from reports.palette import sort_regimes
from reports.records import PATIENT_READINGS, SPECIFICITY_READING, lesion_proportion, main_results, proportion, seed_mean
from reports.stats import mean_sd
from reports.table_model import Column, ReportTable
from reports.tables import ordered_organs, seeds_note
from tumorbench_common.cohorts import AGE_GROUP_NAMES, SEXES, SIZE_BIN_NAMES

ALL_STAGES = "all"


def _proportion_columns(name: str, count: str) -> list[Column]:
    return [Column(name), Column(f"{name} 95% CI", "stat", "range"), Column(count, "stat", "ratio")]


def _cells(stats: dict) -> list:
    return [stats["value"], stats["ci"], (stats["k"], stats["n"]) if stats["n"] else None]


def _combos(frame: pd.DataFrame):
    """(organ, backbone, regime, rows) for every combination present in ``frame``."""
    for organ in ordered_organs(frame.organ.unique()):
        for backbone in sorted(frame[frame.organ == organ].backbone.unique()):
            sel = frame[(frame.organ == organ) & (frame.backbone == backbone)]
            for regime in sort_regimes(sel.regime.unique()):
                yield organ, backbone, regime, sel[sel.regime == regime]


def several_seeds(frame: pd.DataFrame) -> bool:
    return bool(main_results(frame).seed.nunique() > 1)


def clustered_caption(n_boot: int, several: bool) -> str:
    return plan.CLUSTERED.format(level=plan.LEVEL, n_boot=f"{n_boot:,}", seeds=" and seeds" if several else "")


def detection_table(per_lesion: pd.DataFrame, seed: int = 0, n_boot: int = N_BOOT) -> tuple[ReportTable, dict]:
    """Tumor-wise sensitivity per radius bin and over all stages; also returns the plot data."""
    lesions = main_results(per_lesion)
    several = several_seeds(lesions)
    columns = [Column(n, "key", "text") for n in ("Organ", "Backbone", "Regime", "Radius (mm)")]
    columns += _proportion_columns("sensitivity", "hits/n") + ([Column("seed sd", "stat")] if several else [])
    table = ReportTable("fig10_size_bins", "Fig 10 style — tumor detection by size",
                        "Tumor-wise (lesion-wise) sensitivity (%) per equivalent-sphere radius bin and over all "
                        "stages, hits and n (reference lesions) pooled over test folds. Interval: "
                        + clustered_caption(n_boot, several) + ". Regimes are compared on the same lesions in the "
                        "paired detection table (exact McNemar), not by overlapping intervals.", columns)
    data = {}
    for organ, backbone, regime, rows in _combos(lesions):
        stats = {name: lesion_proportion(rows[rows.size_bin == name], seed, n_boot) for name in SIZE_BIN_NAMES}
        stats[ALL_STAGES] = lesion_proportion(rows, seed, n_boot)
        data[(organ, backbone, regime)] = stats
        for name, value in stats.items():
            table.rows.append([organ, backbone, regime, name, *_cells(value)] + ([value["seed_sd"]] if several else []))
    table.notes += seeds_note(lesions)
    return table, data


def patient_table(per_case: pd.DataFrame) -> ReportTable:
    """Patient-level sensitivity in every reading of ``records.PATIENT_READINGS`` and specificity,
    counts pooled over test folds, Wilson CIs (one value per patient: independent)."""
    columns = [Column(n, "key", "text") for n in ("Organ", "Backbone", "Regime")]
    for reading in PATIENT_READINGS:
        columns += _proportion_columns(f"sensitivity, {reading}", f"TP/(TP+FN), {reading}")
    columns += _proportion_columns(f"specificity, {SPECIFICITY_READING}", "TN/(TN+FP)")
    table = ReportTable("fig10_patient", "Patient-level detection",
                        "Patient-level sensitivity over patients with a tumor in two readings — 'rule call': the "
                        "official DiffTumor rule calls the CT positive (tumor ∧ organ, 3×3×3 erosion at 1 mm, "
                        "more than th mm³ left, anywhere in the CT); 'lesion hit': at least one reference lesion is "
                        "detected — and specificity ('rule call' negative) over tumor-free patients (%), pooled "
                        f"over test folds; {plan.WILSON.format(level=plan.LEVEL)}.", columns)
    cases = main_results(per_case).dropna(subset=["has_tumor", "pred_has_tumor"]).copy()
    for reading, call in PATIENT_READINGS.items():
        cases[f"call: {reading}"] = call(cases)
    cases["negative_call"] = ~cases[f"call: {SPECIFICITY_READING}"]
    for organ, backbone, regime, rows in _combos(cases):
        tumor = rows.has_tumor.astype(bool)
        cells = [c for reading in PATIENT_READINGS for c in _cells(proportion(rows[tumor], f"call: {reading}"))]
        table.rows.append([organ, backbone, regime, *cells, *_cells(proportion(rows[~tumor], "negative_call"))])
    return table


def _demographic_groups(frame: pd.DataFrame):
    for group in AGE_GROUP_NAMES:
        yield f"age {group}", frame.age_group == group
    for sex in SEXES:
        yield f"sex {sex}", frame.sex == sex


def demographics_table(per_case: pd.DataFrame, per_lesion: pd.DataFrame, seed: int = 0,
                       n_boot: int = N_BOOT) -> tuple[ReportTable, dict]:
    """Fig 14: tumor-wise sensitivity and tumor DSC per age group and sex, pooled over test folds."""
    columns = [Column(n, "key", "text") for n in ("Organ", "Backbone", "Regime", "Group")]
    columns += _proportion_columns("sensitivity", "hits/n") + [Column("tumor DSC"), Column("DSC sd", "stat"),
                                                                Column("n tumor cases", "stat", "int")]
    table = ReportTable("fig14_demographics", "Fig 14 style — performance by age and sex",
                        "Tumor-wise sensitivity (%) of the lesions of the group's patients and mean per-case "
                        "tumor DSC (%) over the group's cases with a tumor, pooled over test folds (seeds "
                        "averaged per case). Interval: " + clustered_caption(n_boot, several_seeds(per_lesion)) +
                        ".", columns)
    lesions, cases = main_results(per_lesion), main_results(per_case)
    data = {}
    for organ, backbone, regime, rows in _combos(lesions):
        case_rows = cases[(cases.organ == organ) & (cases.backbone == backbone) & (cases.regime == regime)]
        tumor_cases = case_rows[case_rows.has_tumor.fillna(False).astype(bool)]
        for name, mask in _demographic_groups(rows):
            sens = lesion_proportion(rows[mask], seed, n_boot)
            group_cases = tumor_cases[dict(_demographic_groups(tumor_cases))[name]]
            dsc = 100.0 * seed_mean(group_cases, "tumor_dsc")
            mean, sd = mean_sd(dsc.tolist())
            data[(organ, backbone, regime, name)] = {"sens": sens, "dsc": mean, "dsc_sd": sd, "n": len(dsc)}
            table.rows.append([organ, backbone, regime, name, *_cells(sens), mean, sd, len(dsc)])
    table.notes += seeds_note(lesions)
    return table, data


def case_outcomes(grid: GridData) -> dict[tuple, dict]:
    """(organ, case_id) -> {"case": per-case dict, "models": {"backbone·regime": per-case dict}}."""
    out: dict[tuple, dict] = {}
    for cell in grid.cells.values():
        for case in (grid.summary(cell) or {}).get("metric_per_case", []):
            entry = out.setdefault((cell.organ, str(case["case_id"])), {"case": case, "models": {}, "cells": {}})
            entry["models"][f"{cell.backbone}·{cell.regime}"] = case
            entry["cells"][f"{cell.backbone}·{cell.regime}"] = cell
    return out


def missed(case: dict) -> bool:
    lesions = case.get("lesions") or []
    return bool(lesions) and not any(lesion.get("detected") for lesion in lesions)


def hardest_cases(grid: GridData, top: int = 10, locations: dict | None = None) -> tuple[ReportTable, list]:
    """Fig 16 style: tumor cases with the lowest mean tumor DSC over all models."""
    columns = [Column(n, "key", "text") for n in ("Organ", "Case")]
    columns += [Column("mean tumor DSC"), Column("min tumor DSC"), Column("models", "stat", "int"),
                Column("lesions", "stat", "int"), Column("largest radius (mm)", "stat", "pct"),
                Column("tumor volume (mL)", "stat", "pct"), Column("location", "stat", "text"),
                Column("missed by", "stat", "text")]
    table = ReportTable("fig16_hardest", "Fig 16 style — hardest cases",
                        f"The {top} tumor cases with the lowest tumor DSC (%) averaged over every "
                        "backbone × regime that evaluated them; 'missed by' = no lesion detected.", columns)
    ranked = []
    for (organ, case_id), entry in case_outcomes(grid).items():
        if not entry["case"].get("has_tumor"):
            continue
        dscs = [100.0 * m["tumor_dsc"] for m in entry["models"].values() if m.get("tumor_dsc") is not None]
        if dscs:
            ranked.append((sum(dscs) / len(dscs), organ, case_id, entry, dscs))
    ranked.sort(key=lambda r: (r[0], r[1], r[2]))
    for mean, organ, case_id, entry, dscs in ranked[:top]:
        lesions = entry["case"].get("lesions") or []
        radius = max((les["radius_mm"] for les in lesions), default=None)
        volume = sum(les["volume_mm3"] for les in lesions) / 1000.0 if lesions else None
        misses = sorted(name for name, case in entry["models"].items() if missed(case))
        where = (locations or {}).get((organ, case_id), "—")
        table.rows.append([organ, case_id, mean, min(dscs), len(dscs), len(lesions), radius, volume, where,
                           ", ".join(misses) or "none"])
    return table, [(r[1], r[2]) for r in ranked[:top]]
