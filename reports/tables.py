"""Paper-style tables from the grid: Table 3 (cross-organ early sensitivity), Tables 4-6 (DSC/NSD
per fold), Table 7 (real vs Hu vs DiffTumor with paired statistics). Ours are percent (x100 of the
MLflow fractions); published values sit in their own ``pub`` columns."""
from __future__ import annotations

import zlib

import numpy as np

from reports.loader import Cell, GridData, cell_label
from reports.palette import ORGANS, backbone_label, sort_regimes
from reports.paper import AVERAGE, PaperResults
from reports.stats import mean_sd, paired_comparison
from reports.table_model import Column, ReportTable, mean_of, pct

METRIC_LABELS = {"tumor_dsc": "DSC", "tumor_nsd": "NSD"}


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


def _cells(grid: GridData, organ, backbone, regime) -> list[Cell]:
    return [c for k, c in sorted(grid.cells.items()) if k[:3] == (organ, backbone, regime)]


def eval_organs(cells: list[Cell]) -> list[str]:
    found = {m[len("xorgan_early_sensitivity_"):] for c in cells for m in c.metrics
             if m.startswith("xorgan_early_sensitivity_")}
    return [o for o in ORGANS if o in found] + sorted(found - set(ORGANS))


def table3_runs(grid: GridData, source: str, target: str, backbone: str, regime: str) -> list[Cell]:
    """Runs of one Table 3 entry (metric ``xorgan_early_sensitivity_<target>``): a real row is the
    source organ's model evaluated on the target; a synthetic row is the target's model trained
    with the source organ's generator (the main-grid cell on the diagonal)."""
    if regime == "real" or source == target:
        return _cells(grid, source, backbone, regime)
    return [c for k, c in sorted(grid.cross_cells.items()) if k[:3] == (target, backbone, regime) and k[4] == source]


def table3(grid: GridData, paper: PaperResults, expected: list[tuple], backbone: str) -> ReportTable:
    """Cross-organ early-tumor sensitivity: rows = source organ x regime, cols = target organ."""
    cells = [c for c in [*grid.cells.values(), *grid.cross_cells.values()] if c.backbone == backbone]
    targets = eval_organs(cells) or axis(grid, expected, 0)
    columns = [Column("Source organ", "key", "text"), Column("Regime", "key", "text"),
               Column("Folds", "stat", "int")]
    for organ in targets:
        columns += [Column(f"{organ} (ours)"), Column(f"{organ} (paper)", "pub")]
    table = ReportTable(f"table3_{backbone}", f"Table 3 — cross-organ early-tumor sensitivity, "
                        f"{backbone_label(backbone)}",
                        "Sensitivity (%) for tumors of radius ≤ 10 mm on the column (target) organ's test "
                        "folds. Real rows: model trained on the row organ's real tumors. Synthetic rows: "
                        "model trained on the target's healthy CTs with the row organ's generator; the "
                        "diagonal is the main-grid cell (real + synthetic tumors). Ours = mean over folds.", columns)
    for source in sorted(set(axis(grid, expected, 0)) | {k[4] for k in grid.cross_cells}):
        for regime in sort_regimes(sorted(set(axis(grid, expected, 2)) | {k[2] for k in grid.cross_cells})):
            runs = {target: table3_runs(grid, source, target, backbone, regime) for target in targets}
            row = [source, regime, max((len(r) for r in runs.values()), default=0)]
            for organ in targets:
                metric = f"xorgan_early_sensitivity_{organ}"
                row += [mean_of([pct(c.metrics.get(metric)) for c in runs[organ]]),
                        paper.early_sensitivity(backbone, source, organ, regime)]
                table.missing += [f"{c.label}: {metric} not logged (no early tumors evaluated, or no "
                                  "cross-organ evaluation)" for c in runs[organ] if metric not in c.metrics]
            table.rows.append(row)
    table.missing = missing_notes(grid, expected, lambda k: k[1] == backbone) + table.missing
    return table


def fold_table(grid: GridData, paper: PaperResults, expected: list[tuple], organ: str) -> ReportTable:
    """Tables 4-6: tumor DSC / NSD per fold, mean ± sd, per backbone and regime, with the paper's."""
    folds = axis(grid, expected, 3)
    number = paper.fold_table(organ)
    columns = [Column("Backbone", "key", "text"), Column("Regime", "key", "text"), Column("Metric", "key", "text")]
    columns += [Column(f"fold {f}") for f in folds] + [Column("mean"), Column("sd"), Column("n", "stat", "int")]
    columns += [Column(f"paper fold {f}", "pub") for f in folds] + [Column("paper mean (5 folds)", "pub")]
    table = ReportTable(f"table{number or ''}_{organ}", f"Table {number or '4-6'} style — {organ} tumor "
                        "segmentation per fold", "Tumor DSC and NSD (2 mm) in %, per validation fold; "
                        "sd = sample standard deviation over folds.", columns)
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


def per_case(summary: dict | None, metric: str) -> dict[str, float]:
    """case_id -> per-case tumor metric in %, for cases that have a real tumor."""
    if not summary:
        return {}
    return {str(c["case_id"]): 100.0 * c[metric] for c in summary.get("metric_per_case", [])
            if c.get("has_tumor") and c.get(metric) is not None}


def table7(grid: GridData, paper: PaperResults, expected: list[tuple], seed: int = 0,
           n_boot: int = 2000) -> ReportTable:
    """Real vs Hu vs DiffTumor for the same organ/backbone/fold with paired Wilcoxon + bootstrap CI."""
    regimes = sort_regimes(axis(grid, expected, 2))
    synthetic = [r for r in regimes if r != "real"]
    columns = [Column(n, "key", "text") for n in ("Organ", "Backbone", "Fold", "Metric")]
    columns += [Column(r) for r in regimes] + [Column(f"paper {r}", "pub") for r in regimes]
    for s in synthetic:
        columns += [Column(f"Δ {s}−real", "stat", "signed"), Column(f"95% CI {s}−real", "stat", "ci"),
                    Column(f"p {s} vs real", "stat", "p"), Column(f"n cases {s}", "stat", "int")]
    table = ReportTable("table7", "Table 7 style — real vs Hu vs DiffTumor (same backbone and fold)",
                        "Mean per-case tumor DSC/NSD (%) over validation cases with a tumor; Δ = synthetic − "
                        "real on the same cases, paired two-sided Wilcoxon signed-rank p and percentile "
                        f"bootstrap 95% CI of the mean difference ({n_boot} resamples, seed {seed}).", columns)
    for organ, backbone, fold in sorted({(k[0], k[1], k[3]) for k in grid.cells}):
        present = [r for r in regimes if (organ, backbone, r, fold) in grid.cells]
        if len(present) < 2:
            continue
        summaries = {r: grid.summary(grid.cells[(organ, backbone, r, fold)]) for r in present}
        for metric, label in METRIC_LABELS.items():
            cases = {r: per_case(summaries[r], metric) for r in present}
            row = [organ, backbone, fold, label]
            row += [pct(grid.cells[(organ, backbone, r, fold)].metrics.get(metric)) if r in present else None
                    for r in regimes]
            row += [paper.get(7, backbone, metric, organ, r, fold) for r in regimes]
            for s in synthetic:
                if "real" not in present or s not in present:
                    row += [None, None, None, None]
                    continue
                rng = np.random.default_rng([seed, zlib.crc32(f"{organ}{backbone}{fold}{metric}{s}".encode())])
                cmp = paired_comparison(cases["real"], cases[s], rng, n_boot)
                if cmp.n < 2:
                    table.notes.append(f"{organ}·{backbone}·f{fold} {label} {s} vs real: {cmp.n} paired "
                                       "case(s) with a tumor, too few for a test or CI")
                row += [cmp.mean_diff if cmp.n else None, cmp.ci, cmp.p_value, cmp.n]
            table.rows.append(row)
    table.missing = missing_notes(grid, expected, lambda k: True)
    if not table.rows:
        table.notes.append("No organ/backbone/fold has two regimes yet.")
    return table
