"""Paper-style tables from the grid: Table 3 (cross-organ early sensitivity, source -> target) and
Tables 4-6 (DSC/NSD per fold). Ours are percent (x100 of the MLflow / summary.json fractions);
published values sit in their own ``pub`` columns. Paired tests and rankings: ``reports.inference``."""
from __future__ import annotations

import pandas as pd

from reports.loader import Cell, GridData, cell_label
from reports.palette import ORGANS, backbone_label, sort_regimes
from reports.paper import AVERAGE, PaperResults
from reports.records import proportion, source_target
from reports.stats import mean_sd
from reports.table_model import Column, ReportTable, pct

METRIC_LABELS = {"tumor_dsc": "DSC", "tumor_nsd": "NSD"}
TABLE3_LINE = ("Row = source organ: for real tumors the organ whose real tumors trained the model, for a "
               "generator the organ whose generator made the training tumors. Column = target organ whose "
               "real early tumors (radius ≤ 10 mm) are tested; synthetic rows are models trained for the "
               "target organ.")


def missing_notes(grid: GridData, expected: list[tuple], keep) -> list[str]:
    """Describe expected cells (filtered by ``keep(key)``) that have no finished run."""
    notes = []
    for key in expected:
        if keep(key) and key not in grid.cells:
            status = grid.unfinished.get(key)
            notes.append(f"{cell_label(key)}: " + (f"run {status}, not finished" if status else "no run"))
    return notes


def axis(grid: GridData, expected: list[tuple], index: int) -> list:
    return sorted({k[index] for k in expected} | {k[index] for k in grid.cells})


def ordered_organs(organs) -> list[str]:
    organs = set(organs)
    return [o for o in ORGANS if o in organs] + sorted(organs - set(ORGANS))


def seeds_note(frame: pd.DataFrame) -> list[str]:
    seeds = sorted(frame["seed"].unique()) if not frame.empty else []
    if len(seeds) > 1:
        return [f"{len(seeds)} seeds ({', '.join(map(str, seeds))}): values are means over seeds of the "
                "pooled value; 'seed sd' = sample sd between seeds; the Wilson CI uses one seed's n."]
    return []


def table3(grid: GridData, per_lesion: pd.DataFrame, paper: PaperResults, expected: list[tuple],
           backbone: str) -> ReportTable:
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
                        "folds, Wilson 95% CI. " + TABLE3_LINE, columns)
    for source in organs:
        for regime in sort_regimes(set(axis(grid, expected, 2)) | set(lesions.regime)):
            row = [source, regime]
            for target in organs:
                stats = proportion(lesions[(lesions.source_organ == source) & (lesions.organ == target)
                                           & (lesions.regime == regime)])
                row += [stats["value"], stats["ci"], (stats["k"], stats["n"]) if stats["n"] else None]
                row += [stats["seed_sd"]] if several else []
                row.append(paper.early_sensitivity(backbone, source, target, regime))
            table.rows.append(row)
    table.notes += seeds_note(lesions)
    table.notes.append("— = no source → target run evaluated (synthetic off-diagonal cells need a model "
                       "trained for the target with the source organ's generator), or no early tumor.")
    table.missing = missing_notes(grid, expected, lambda k: k[1] == backbone)
    return table


def fold_table(grid: GridData, paper: PaperResults, expected: list[tuple], organ: str) -> ReportTable:
    """Tables 4-6: tumor DSC / NSD per fold, mean ± sd, per backbone and regime, with the paper's."""
    folds = axis(grid, expected, 3)
    number = paper.fold_table(organ)
    columns = [Column("Backbone", "key", "text"), Column("Regime", "key", "text"), Column("Metric", "key", "text")]
    columns += [Column(f"fold {f}") for f in folds] + [Column("mean"), Column("sd"), Column("n", "stat", "int")]
    columns += [Column(f"paper fold {f}", "pub") for f in folds] + [Column("paper mean (5 folds)", "pub")]
    table = ReportTable(f"table{number or ''}_{organ}", f"Table {number or '4-6'} style — {organ} tumor "
                        "segmentation per fold", "Tumor DSC and NSD (2 mm) in %, per test fold (first seed); "
                        "sd = sample standard deviation over folds, n = folds. Regimes are compared on the "
                        "pooled test cases in the paired-comparison table.", columns)
    for backbone in axis(grid, expected, 1):
        for regime in sort_regimes(axis(grid, expected, 2)):
            for metric, label in METRIC_LABELS.items():
                per_fold = [pct(grid.cells[(organ, backbone, regime, f)].metrics.get(metric))
                            if (organ, backbone, regime, f) in grid.cells else None for f in folds]
                mean, sd = mean_sd([v for v in per_fold if v is not None])
                row = [backbone, regime, label, *per_fold, mean, sd, sum(v is not None for v in per_fold)]
                row += [paper.get(number, backbone, metric, organ, regime, f) for f in folds]
                row.append(paper.get(number, backbone, metric, organ, regime, AVERAGE))
                table.rows.append(row)
    table.missing = missing_notes(grid, expected, lambda k: k[0] == organ) + not_logged(
        [c for c in grid.cells.values() if c.organ == organ], METRIC_LABELS)
    return table


def not_logged(cells: list[Cell], metrics) -> list[str]:
    """Finished cells that lack a metric (the runner leaves out nulls, e.g. a fold without tumors)."""
    return [f"{c.label}: {m} not logged (undefined, e.g. no validation case with a tumor)"
            for c in sorted(cells, key=lambda c: c.key) for m in metrics if m not in c.metrics]
