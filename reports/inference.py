"""Pooled paired inference between regimes, ranking stability and seed-to-seed variation.

Unit of analysis: a test case with a tumor, own-organ evaluation of the main grid, pooled over the
test folds (disjoint, so every case counts once); with several seeds a case's value is first averaged
over seeds. Every regime pair is compared on the cases both evaluated: mean difference (B − A), paired
percentile bootstrap 95 % CI, two-sided Wilcoxon signed-rank p, and Holm's adjustment across the whole
family of comparisons in the report (every organ × backbone × metric × pair)."""
from __future__ import annotations

import itertools
import zlib

import numpy as np
import pandas as pd

from reports.palette import sort_regimes
from reports.records import main_results, seed_mean
from reports.stats import holm, mean_sd, paired_comparison, rank_stability
from reports.table_model import Column, ReportTable
from reports.tables import METRIC_LABELS, ordered_organs


def _rng(seed: int, *parts) -> np.random.Generator:
    """A generator per comparison, so adding a regime does not change another pair's CI."""
    return np.random.default_rng([seed, zlib.crc32("·".join(map(str, parts)).encode())])


def _tumor_cases(per_case: pd.DataFrame) -> pd.DataFrame:
    main = main_results(per_case)
    return main[main["has_tumor"].fillna(False).astype(bool)]


def _groups(frame: pd.DataFrame):
    for organ in ordered_organs(frame.organ.unique()):
        for backbone in sorted(frame[frame.organ == organ].backbone.unique()):
            yield organ, backbone, frame[(frame.organ == organ) & (frame.backbone == backbone)]


def paired_table(per_case: pd.DataFrame, seed: int = 0, n_boot: int = 2000) -> ReportTable:
    """Every regime pair per organ × backbone × metric on pooled test cases, Holm-adjusted."""
    columns = [Column(n, "key", "text") for n in ("Organ", "Backbone", "Metric", "A", "B")]
    columns += [Column("mean A"), Column("mean B"), Column("Δ B−A", "stat", "signed"),
                Column("95% CI of Δ", "stat", "ci"), Column("Wilcoxon p", "stat", "p"),
                Column("Holm p", "stat", "p"), Column("n cases", "stat", "int"), Column("folds", "stat", "int")]
    table = ReportTable("paired", "Paired comparison of regimes on pooled test cases",
                        "Per-case tumor DSC / NSD (%) of cases with a tumor, pooled over test folds (seeds "
                        "averaged per case). Δ = B − A on the cases both regimes evaluated; percentile "
                        f"bootstrap 95% CI ({n_boot} resamples of cases, seed {seed}); two-sided Wilcoxon "
                        "signed-rank p (scipy); Holm p adjusts for every comparison in this table.", columns)
    cases = _tumor_cases(per_case)
    for organ, backbone, rows in _groups(cases):
        regimes = sort_regimes(rows.regime.unique())
        for metric, label in METRIC_LABELS.items():
            values = {r: (100.0 * seed_mean(rows[rows.regime == r], metric)).to_dict() for r in regimes}
            for a, b in itertools.combinations(regimes, 2):
                cmp = paired_comparison(values[a], values[b], _rng(seed, organ, backbone, metric, a, b), n_boot)
                shared = set(values[a]) & set(values[b])
                folds = rows[rows.case_id.isin(shared)].fold.nunique()
                table.rows.append([organ, backbone, label, a, b, np.mean([values[a][c] for c in shared]) if shared
                                   else None, np.mean([values[b][c] for c in shared]) if shared else None,
                                   cmp.mean_diff if cmp.n else None, cmp.ci, cmp.p_value, None, cmp.n, folds])
    for row, adjusted in zip(table.rows, holm([r[9] for r in table.rows])):
        row[10] = adjusted
    family = sum(not np.isnan(r[9]) for r in table.rows)
    table.notes.append(f"Holm family: {family} comparisons with a defined p (pairs with fewer than 2 cases or "
                       "all-zero differences have no test).")
    if not table.rows:
        table.notes.append("No organ × backbone has two regimes with tumor cases yet.")
    return table


def ranking_table(per_case: pd.DataFrame, seed: int = 0, n_boot: int = 2000) -> ReportTable:
    """Per organ × backbone: regimes ranked by mean tumor DSC and how stable that ranking is."""
    columns = [Column(n, "key", "text") for n in ("Organ", "Backbone", "Regime")]
    columns += [Column("mean DSC"), Column("rank", "stat", "int"), Column("mean bootstrap rank", "stat"),
                Column("P(rank 1) %"), Column("rank 95% interval", "stat", "text"), Column("n cases", "stat", "int")]
    table = ReportTable("ranking", "Ranking stability", "Regimes ranked by mean per-case tumor DSC (%) on the "
                        f"test cases every regime evaluated (rank 1 = best); {n_boot} bootstrap resamples of "
                        f"cases (seed {seed}) give each regime's rank distribution: how often it ranks first and "
                        "its 95% rank interval.", columns)
    cases = _tumor_cases(per_case)
    for organ, backbone, rows in _groups(cases):
        regimes = sort_regimes(rows.regime.unique())
        frame = pd.DataFrame({r: 100.0 * seed_mean(rows[rows.regime == r], "tumor_dsc") for r in regimes}).dropna()
        if len(regimes) < 2 or len(frame) < 2:
            continue
        ranks = rank_stability(frame[regimes].to_numpy(), regimes, _rng(seed, organ, backbone, "rank"), n_boot)
        for i, regime in enumerate(regimes):
            low, high = ranks.rank_interval[i]
            table.rows.append([organ, backbone, regime, ranks.means[i], ranks.ranks[i], ranks.mean_boot_rank[i],
                               100.0 * ranks.p_first[i], f"{low}–{high}", len(frame)])
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
                        "per training seed; sd = sample sd between seeds.", columns)
    for organ, backbone, rows in _groups(cases):
        for regime in sort_regimes(rows.regime.unique()):
            per_seed = 100.0 * rows[rows.regime == regime].dropna(subset=["tumor_dsc"]).groupby("seed")["tumor_dsc"].mean()
            mean, sd = mean_sd(per_seed.tolist())
            text = ", ".join(f"s{s}: {v:.1f}" for s, v in per_seed.items())
            table.rows.append([organ, backbone, regime, mean, sd, per_seed.min(), per_seed.max(), len(per_seed), text])
    return table
