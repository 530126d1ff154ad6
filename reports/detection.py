"""Fig 10 (detection by tumor size, patient-level), Fig 14 (demographics) and Fig 16 (hardest
cases) tables. Counts are pooled over folds from each cell's summary.json (validation folds are
disjoint, so pooling covers every case once); per-fold MLflow metrics are the fallback."""
from __future__ import annotations

from reports.loader import GridData
from reports.palette import sort_regimes
from reports.table_model import Column, ReportTable, mean_of, pct
from reports.tables import axis, missing_notes

SIZE_BINS = ("0-5", "5-10", "10-15", "15-20", "20+")
BIN_METRICS = {"0-5": "sens_0_5", "5-10": "sens_5_10", "10-15": "sens_10_15", "15-20": "sens_15_20",
               "20+": "sens_20_inf"}
AGE_GROUPS = {"<50": "lt50", "50-59": "50_59", "60-69": "60_69", "70+": "70p"}
SEXES = ("M", "F")


def groups(grid: GridData):
    """(organ, backbone, regime, cells) for every combination with at least one finished cell."""
    for organ in grid.values("organ"):
        for backbone in grid.values("backbone"):
            for regime in sort_regimes(grid.values("regime")):
                cells = [c for k, c in sorted(grid.cells.items()) if k[:3] == (organ, backbone, regime)]
                if cells:
                    yield organ, backbone, regime, cells


def size_bin_stats(grid: GridData, cells) -> dict[str, dict]:
    """bin -> {n, detected, sensitivity (%)} pooled over the cells' summaries (metric mean fallback)."""
    out = {}
    summaries = [grid.summary(c) for c in cells]
    for name in SIZE_BINS:
        bins = [s["size_bins"].get(name) for s in summaries if s and s.get("size_bins")]
        n = sum(int(b["n"]) for b in bins if b)
        det = sum(int(b["detected"]) for b in bins if b)
        if bins and len(bins) == len(cells):
            out[name] = {"n": n, "detected": det, "sensitivity": 100.0 * det / n if n else None}
        else:
            out[name] = {"n": None, "detected": None,
                         "sensitivity": mean_of([pct(c.metrics.get(BIN_METRICS[name])) for c in cells])}
    return out


def detection_table(grid: GridData, expected: list[tuple]) -> tuple[ReportTable, dict]:
    """Sensitivity per radius bin per organ/backbone/regime; also returns the data for the plot."""
    columns = [Column(n, "key", "text") for n in ("Organ", "Backbone", "Regime")]
    for name in SIZE_BINS:
        columns += [Column(f"sens r {name} mm"), Column(f"n r {name} mm", "stat", "int")]
    table = ReportTable("fig10_size_bins", "Fig 10 style — tumor detection by size",
                        "Lesion-wise sensitivity (%) by equivalent-sphere radius bin (mm), pooled over "
                        "folds; n = number of ground-truth lesions in the bin.", columns)
    data = {}
    for organ, backbone, regime, cells in groups(grid):
        stats = size_bin_stats(grid, cells)
        data[(organ, backbone, regime)] = stats
        row = [organ, backbone, regime]
        for name in SIZE_BINS:
            row += [stats[name]["sensitivity"], stats[name]["n"]]
        table.rows.append(row)
    table.missing = missing_notes(grid, expected, lambda k: True)
    return table, data


def patient_table(grid: GridData, expected: list[tuple]) -> ReportTable:
    """Patient-level sensitivity/specificity from pooled tp/fn/tn/fp (fallback: metric mean)."""
    columns = [Column(n, "key", "text") for n in ("Organ", "Backbone", "Regime")]
    columns += [Column("sensitivity"), Column("specificity")]
    columns += [Column(n, "stat", "int") for n in ("TP", "FN", "TN", "FP")]
    table = ReportTable("fig10_patient", "Patient-level detection",
                        "A patient is positive when the model predicts any tumor; sensitivity over "
                        "patients with a tumor, specificity over tumor-free patients (%).", columns)
    for organ, backbone, regime, cells in groups(grid):
        patients = [(grid.summary(c) or {}).get("patient") for c in cells]
        if all(p and all(p.get(k) is not None for k in ("tp", "fn", "tn", "fp")) for p in patients):
            tp, fn, tn, fp = (sum(int(p[k]) for p in patients) for k in ("tp", "fn", "tn", "fp"))
            sens = 100.0 * tp / (tp + fn) if tp + fn else None
            spec = 100.0 * tn / (tn + fp) if tn + fp else None
        else:
            tp = fn = tn = fp = None
            sens = mean_of([pct(c.metrics.get("patient_sensitivity")) for c in cells])
            spec = mean_of([pct(c.metrics.get("patient_specificity")) for c in cells])
        table.rows.append([organ, backbone, regime, sens, spec, tp, fn, tn, fp])
    table.missing = missing_notes(grid, expected, lambda k: True)
    return table


def demographics_table(grid: GridData, expected: list[tuple]) -> tuple[ReportTable, dict]:
    """Tumor DSC and sensitivity by age group and sex (mean over folds of the MLflow metrics)."""
    columns = [Column(n, "key", "text") for n in ("Organ", "Backbone", "Regime", "Group")]
    columns += [Column("tumor DSC"), Column("sensitivity"), Column("n patients", "stat", "int")]
    table = ReportTable("fig14_demographics", "Fig 14 style — performance by age and sex",
                        "Tumor DSC and patient-level sensitivity (%) per demographic group, mean over "
                        "folds of the per-fold values; n = patients pooled over folds.", columns)
    data = {}
    for organ, backbone, regime, cells in groups(grid):
        summaries = [grid.summary(c) or {} for c in cells]
        group_names = [("age", g, suffix) for g, suffix in AGE_GROUPS.items()] + [("sex", s, s) for s in SEXES]
        for kind, label, suffix in group_names:
            dsc = mean_of([pct(c.metrics.get(f"tumor_dsc_{kind}_{suffix}")) for c in cells])
            sens = mean_of([pct(c.metrics.get(f"sensitivity_{kind}_{suffix}")) for c in cells])
            counts = [s.get("demographics", {}).get(kind, {}).get(label, {}).get("n") for s in summaries]
            n = sum(int(v) for v in counts if v is not None) if any(v is not None for v in counts) else None
            name = f"age {label}" if kind == "age" else f"sex {label}"
            data[(organ, backbone, regime, name)] = {"dsc": dsc, "sens": sens, "n": n}
            table.rows.append([organ, backbone, regime, name, dsc, sens, n])
    table.missing = missing_notes(grid, expected, lambda k: True)
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
