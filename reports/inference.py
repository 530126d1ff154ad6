"""Pooled paired inference between regimes, ranking stability and seed-to-seed variation.

Follows docs/statistics.md. Unit of analysis: a test case with a tumor, own-organ evaluation of the
main grid, pooled over the test folds (disjoint, so every case counts once). Every regime pair is
compared on the cases both evaluated in every seed: mean difference (B − A), studentized bootstrap
interval (hierarchical over cases and seeds when there are several), Wilcoxon signed-rank (Pratt,
exact) on the seed-averaged differences, Holm within each organ × metric family."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from reports import plan
from reports.bootstrap import N_BOOT, paired_difference, rank_stability, stream
from reports.palette import sort_regimes
from reports.records import main_results
from reports.stats import family_sizes, holm_by_family, mean_sd
from reports.table_model import Column, ReportTable
from reports.tables import METRIC_LABELS, ordered_organs


PERCENT_DIFF = (-100.0, 100.0)  # a mean difference of two percentages


def _tumor_cases(per_case: pd.DataFrame) -> pd.DataFrame:
    main = main_results(per_case)
    return main[main["has_tumor"].fillna(False).astype(bool)]


def _groups(frame: pd.DataFrame):
    for organ in ordered_organs(frame.organ.unique()):
        for backbone in sorted(frame[frame.organ == organ].backbone.unique()):
            yield organ, backbone, frame[(frame.organ == organ) & (frame.backbone == backbone)]


def seed_matrices(rows: pd.DataFrame, regimes: list[str], metric: str) -> dict[str, pd.DataFrame]:
    """Per regime a (seed × case) table of ``metric`` in %, restricted to the cases every seed of
    every listed regime evaluated (so a comparison is paired on the same cases)."""
    tables = {r: 100.0 * rows[rows.regime == r].pivot_table(index="seed", columns="case_id", values=metric)
              for r in regimes}
    shared = sorted(set.intersection(*(set(t.dropna(axis=1).columns) for t in tables.values())))
    return {r: t[shared] for r, t in tables.items()}


def max_seeds(frame: pd.DataFrame) -> int:
    """Most training seeds of any cell (organ × backbone × regime × fold × source organ); 1 if empty."""
    keys = ["organ", "backbone", "regime", "fold", "source_organ"]
    return int(frame.groupby(keys).seed.nunique().max()) if not frame.empty else 1


def several_seeds(frame: pd.DataFrame) -> bool:
    return max_seeds(frame) > 1


def paired_table(per_case: pd.DataFrame, seed: int = 0, n_boot: int = N_BOOT) -> ReportTable:
    """Every regime pair per organ × backbone × metric on pooled test cases, Holm within organ × metric."""
    columns = [Column(n, "key", "text") for n in ("Organ", "Backbone", "Metric", "A", "B")]
    columns += [Column("mean A"), Column("mean B"), Column("Δ B−A", "stat", "signed"),
                Column("95% CI of Δ", "stat", "ci"), Column("Wilcoxon p", "stat", "p"),
                Column("test", "stat", "text"), Column("Holm family", "stat", "text"),
                Column("Holm p", "stat", "p"), Column("n cases", "stat", "int"), Column("folds", "stat", "int"),
                Column("seeds A/B", "stat", "text")]
    cases = _tumor_cases(per_case)
    multi = several_seeds(cases)
    table = ReportTable("paired", "Paired comparison of regimes on pooled test cases",
                        "Per-case tumor DSC (primary) / NSD (secondary), %, of test cases with a tumor pooled over "
                        "folds, on the cases both regimes evaluated; Δ = B − A of the seed-averaged values. "
                        f"Interval: {plan.bootstrap_text(n_boot, multi)} (seed {seed}), clipped to ±100 (at a "
                        f"few cases it is unbounded). p: {plan.WILCOXON}. "
                        f"Holm p: {plan.HOLM_SEGMENTATION}.", columns)
    families = []
    for organ, backbone, rows in _groups(cases):
        regimes = sort_regimes(rows.regime.unique())
        for metric, label in METRIC_LABELS.items():
            for a, b in itertools.combinations(regimes, 2):
                values = seed_matrices(rows, [a, b], metric)
                va, vb = values[a].to_numpy(), values[b].to_numpy()
                cmp = paired_difference(va, vb, stream(seed, organ, backbone, metric, a, b), n_boot,
                                        bounds=PERCENT_DIFF)
                folds = rows[rows.case_id.isin(values[a].columns)].fold.nunique()
                means = [va.mean() if va.size else None, vb.mean() if vb.size else None]
                families.append(plan.segmentation_family(organ, label))
                table.rows.append([organ, backbone, label, a, b, *means, cmp.mean_diff if cmp.n else None, cmp.ci,
                                   cmp.p_value, cmp.test, families[-1], None, cmp.n, folds,
                                   f"{len(values[a])}/{len(values[b])}"])
    adjust_within_families(table, families, p_col=9, holm_col=12, rule=plan.HOLM_SEGMENTATION)
    table.notes.append(plan.seeds_sentence(max_seeds(cases)))
    if not table.rows:
        table.notes.append("No organ × backbone has two regimes with tumor cases yet.")
    return table


def adjust_within_families(table: ReportTable, families: list[str], p_col: int, holm_col: int, rule: str) -> None:
    """Fill the Holm column within families and print the families under the table."""
    p_values = [r[p_col] for r in table.rows]
    for row, adjusted in zip(table.rows, holm_by_family(p_values, families)):
        row[holm_col] = adjusted
    table.notes.append(plan.families_note(family_sizes(p_values, families), rule) +
                       " Pairs with fewer than 2 cases or no non-zero difference have no test.")


def ranking_table(per_case: pd.DataFrame, seed: int = 0, n_boot: int = N_BOOT) -> ReportTable:
    """Per organ × backbone: regimes ranked by mean tumor DSC and how stable that ranking is."""
    columns = [Column(n, "key", "text") for n in ("Organ", "Backbone", "Regime")]
    columns += [Column("mean DSC"), Column("rank", "stat", "int"), Column("mean bootstrap rank", "stat"),
                Column("P(rank 1) %"), Column("rank 95% interval", "stat", "text"), Column("n cases", "stat", "int")]
    cases = _tumor_cases(per_case)
    multi = several_seeds(cases)
    resampled = "cases and, per regime, training seeds" if multi else "cases"
    table = ReportTable("ranking", "Ranking stability", "Regimes ranked by mean per-case tumor DSC (%) on the "
                        f"test cases every regime evaluated (rank 1 = best); {n_boot:,} bootstrap resamples of "
                        f"{resampled} (seed {seed}) give each regime's rank distribution: how often it ranks first "
                        "and its 95% rank interval.", columns)
    for organ, backbone, rows in _groups(cases):
        regimes = sort_regimes(rows.regime.unique())
        values = seed_matrices(rows, regimes, "tumor_dsc")
        n_cases = len(values[regimes[0]].columns)
        if len(regimes) < 2 or n_cases < 2:
            continue
        ranks = rank_stability([values[r].to_numpy() for r in regimes], regimes, stream(seed, organ, backbone, "rank"),
                               n_boot)
        for i, regime in enumerate(regimes):
            low, high = ranks.rank_interval[i]
            table.rows.append([organ, backbone, regime, ranks.means[i], ranks.ranks[i], ranks.mean_boot_rank[i],
                               100.0 * ranks.p_first[i], f"{low}–{high}", n_cases])
    table.notes.append(plan.seeds_sentence(max_seeds(cases)))
    if not table.rows:
        table.notes.append("No organ × backbone has two regimes on at least two shared tumor cases yet.")
    return table


def seeds_table(per_case: pd.DataFrame) -> ReportTable | None:
    """Seed-to-seed variation of the pooled mean tumor DSC; None when every run has one seed."""
    cases = _tumor_cases(per_case)
    if cases.seed.nunique() < 2:
        return None
    columns = [Column(n, "key", "text") for n in ("Organ", "Backbone", "Regime")]
    columns += [Column("mean over seeds"), Column("seed sd"), Column("min"), Column("max"),
                Column("seeds", "stat", "int"), Column("per seed", "stat", "text")]
    table = ReportTable("seeds", "Seed-to-seed variation", "Pooled mean tumor DSC (%) over test cases, computed "
                        "per training seed; sd = sample sd between seeds. The paired intervals and rankings "
                        "resample seeds as well as cases.", columns)
    for organ, backbone, rows in _groups(cases):
        for regime in sort_regimes(rows.regime.unique()):
            per_seed = 100.0 * rows[rows.regime == regime].dropna(subset=["tumor_dsc"]).groupby("seed")["tumor_dsc"].mean()
            mean, sd = mean_sd(per_seed.tolist())
            text = ", ".join(f"s{s}: {v:.1f}" for s, v in per_seed.items())
            table.rows.append([organ, backbone, regime, mean, sd, per_seed.min(), per_seed.max(), len(per_seed), text])
    return table
