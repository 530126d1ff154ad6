"""Paper-style tables from the grid: Table 3 (cross-organ early sensitivity, source -> target) and
Tables 4-6 (DSC/NSD per fold). Ours are percent (x100 of the MLflow / summary.json fractions);
published values sit in their own ``pub`` columns. Paired tests and rankings: ``reports.inference``."""
from __future__ import annotations

import pandas as pd

from reports import plan
from reports.loader import Cell, GridData, cell_label
from reports.palette import ORGANS, backbone_label, sort_regimes
from reports.bootstrap import N_BOOT
from reports.paper import AVERAGE, TABLE7, PaperResults
from reports.records import lesion_proportion, source_target
from reports.stats import mean_sd
from reports.table_model import Column, ReportTable, pct

METRIC_LABELS = {"tumor_dsc": "DSC", "tumor_nsd": "NSD"}
TABLE3_LINE = ("Row = source organ: for real tumors the organ whose real tumors trained the model, for a "
               "generator the organ whose generator made the training tumors. Column = target organ whose "
               "real early tumors (radius ≤ 10 mm) are tested; synthetic rows are models trained for the "
               "target organ.")


NO_CROSS_ORGAN = ("This report has no cross-organ (off-diagonal) cell, so it cannot answer whether tumors of one "
                  "organ teach another: only the diagonal (each organ's own tumors) is shown. To measure it, set "
                  "[evaluate] cross_organ = true in the grid (real rows: each model is also evaluated on the other "
                  "organs; synthetic rows: cells trained for the target with the source organ's generator, "
                  "synth_source) and run it, e.g. tumorbench run grids/paper.toml (docs/protocol.md).")


def missing_notes(grid: GridData, expected: list[tuple], keep) -> list[str]:
    """Describe expected cells (filtered by ``keep(key)``) that have no finished run."""
    notes = []
    for key in expected:
        if keep(key) and key not in grid.cells:
            status = grid.unfinished.get(key)
            notes.append(f"{cell_label(key)}: " + (f"run {status}, not finished" if status else "no run"))
    return notes


def axis(grid: GridData, expected: list[tuple], index: int) -> list:
    values = {k[index] for k in expected} | {k[index] for k in grid.cells}
    return ordered_organs(values) if index == 0 else sorted(values)  # organs in paper order: Tables 4, 5, 6


def ordered_organs(organs) -> list[str]:
    organs = set(organs)
    return [o for o in ORGANS if o in organs] + sorted(organs - set(ORGANS))


def seeds_note(frame: pd.DataFrame) -> list[str]:
    seeds = sorted(frame["seed"].unique()) if not frame.empty else []
    if len(seeds) > 1:
        return [f"{len(seeds)} seeds ({', '.join(map(str, seeds))}): values are means over seeds of the "
                "pooled value; 'seed sd' = sample sd between seeds; the interval resamples seeds and patients."]
    return []


def table3(grid: GridData, per_lesion: pd.DataFrame, paper: PaperResults, expected: list[tuple],
           backbone: str, seed: int = 0, n_boot: int = N_BOOT) -> ReportTable:
    """Cross-organ early-tumor sensitivity, tumor-wise, pooled over folds: rows = source organ x regime."""
    lesions = source_target(per_lesion[(per_lesion.backbone == backbone) & per_lesion.early])
    organs = ordered_organs(set(axis(grid, expected, 0)) | set(lesions.organ) | set(lesions.source_organ))
    several = lesions.seed.nunique() > 1
    columns = [Column("Source organ", "key", "text"), Column("Regime", "key", "text")]
    for target in organs:
        columns += [Column(f"→ {target}"), Column(f"→ {target} 95% CI", "stat", "range"),
                    Column(f"→ {target} hits/n", "stat", "ratio")]
        columns += [Column(f"→ {target} seed sd", "stat")] if several else []
        columns += [Column(f"→ {target} (paper)", "pub")]
    table = ReportTable(f"table3_{backbone}", f"Table 3 — cross-organ early-tumor sensitivity (source → "
                        f"target), {backbone_label(backbone)}",
                        "Tumor-wise sensitivity (%) for real tumors of radius ≤ 10 mm, hits and n pooled over "
                        "folds; interval: " + plan.CLUSTERED.format(level=plan.LEVEL, n_boot=f"{n_boot:,}", seeds=
                        " and seeds" if several else "") + ". " + TABLE3_LINE, columns)
    for source in organs:
        for regime in sort_regimes(set(axis(grid, expected, 2)) | set(lesions.regime)):
            row = [source, regime]
            for target in organs:
                stats = lesion_proportion(lesions[(lesions.source_organ == source) & (lesions.organ == target)
                                                  & (lesions.regime == regime)], seed, n_boot)
                row += [stats["value"], stats["ci"], (stats["k"], stats["n"]) if stats["n"] else None]
                row += [stats["seed_sd"]] if several else []
                row.append(paper.early_sensitivity(backbone, source, target, regime))
            table.rows.append(row)
    table.notes += seeds_note(lesions)
    table.notes.append("— = no source → target run evaluated (synthetic off-diagonal cells need a model "
                       "trained for the target with the source organ's generator), or no early tumor.")
    if not (lesions.source_organ != lesions.organ).any():
        table.notes.append(NO_CROSS_ORGAN)
    table.missing = missing_notes(grid, expected, lambda k: k[1] == backbone)
    return table


def fold_table(grid: GridData, paper: PaperResults, expected: list[tuple], organ: str) -> ReportTable:
    """Tables 4-6: tumor DSC / NSD per fold, mean ± sd over folds (two or more), per backbone and
    regime, with the paper's per-fold values (Table 7's fold-0 values where Tables 4-6 have none)."""
    folds = axis(grid, expected, 3)
    number = paper.fold_table(organ)
    summary = len(folds) >= 2  # a mean and sd over one fold would sit next to the paper's 5-fold mean
    columns = [Column("Backbone", "key", "text"), Column("Regime", "key", "text"), Column("Metric", "key", "text")]
    columns += [Column(f"fold {f}") for f in folds]
    columns += [Column("mean"), Column("sd"), Column("n", "stat", "int")] if summary else []
    columns += [Column(f"paper fold {f}", "pub") for f in folds] + [Column("paper mean (5 folds)", "pub")]
    table = ReportTable(f"table{number or ''}_{organ}", f"Table {number or '4-6'} style — {organ} tumor "
                        "segmentation per fold", "Tumor DSC and NSD (2 mm) in %, per test fold (first seed)" +
                        ("; mean and sd = sample standard deviation over folds, n = folds (shown for n ≥ 2)"
                         if summary else "; one fold: no mean or sd over folds") +
                        ". Regimes are compared on the pooled test cases in the paired-comparison table.", columns)
    from_table7 = set()
    for backbone in axis(grid, expected, 1):
        for regime in sort_regimes(axis(grid, expected, 2)):
            for metric, label in METRIC_LABELS.items():
                per_fold = [pct(grid.cells[(organ, backbone, regime, f)].metrics.get(metric))
                            if (organ, backbone, regime, f) in grid.cells else None for f in folds]
                present = [v for v in per_fold if v is not None]
                mean, sd = mean_sd(present) if len(present) >= 2 else (None, None)
                row = [backbone, regime, label, *per_fold] + ([mean, sd, len(present)] if summary else [])
                published = [paper.fold_value(backbone, metric, organ, regime, f) for f in folds]
                from_table7 |= {(backbone, regime, f) for f, (_, t) in zip(folds, published) if t == TABLE7
                                and t != number}
                row += [value for value, _ in published] + [paper.get(number, backbone, metric, organ, regime, AVERAGE)]
                table.rows.append(row)
    if from_table7:
        cells = ", ".join(f"{backbone_label(b)} {r} fold {f}" for b, r, f in sorted(from_table7))
        table.notes.append(f"Published values of {cells}: the paper's Table 7 (U-Net, fold 0 only; Tables 4–6 "
                           "publish no Hu et al. rows, so there is no published 5-fold mean for them).")
    table.missing = missing_notes(grid, expected, lambda k: k[0] == organ) + not_logged(
        [c for c in grid.cells.values() if c.organ == organ], METRIC_LABELS)
    return table


def not_logged(cells: list[Cell], metrics) -> list[str]:
    """Finished cells that lack a metric (the runner leaves out nulls, e.g. a fold without tumors)."""
    return [f"{c.label}: {m} not logged (undefined, e.g. no validation case with a tumor)"
            for c in sorted(cells, key=lambda c: c.key) for m in metrics if m not in c.metrics]
