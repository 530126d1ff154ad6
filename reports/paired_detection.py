"""Paired detection comparisons (docs/statistics.md): every regime pair per organ × backbone on the
*same* reference lesions of the same test cases, exact McNemar on the lesions hit by one regime and
not the other, Holm within each organ. Lesion-level sensitivities carry patient-clustered intervals.

Several seeds: a binary paired test needs one call per lesion, so the lowest seed of each regime is
used (as Tables 4–6 do); the seed-to-seed spread is in the sensitivity tables' ``seed sd``."""
from __future__ import annotations

import itertools

import pandas as pd

from reports import plan
from reports.bootstrap import N_BOOT
from reports.inference import adjust_within_families
from reports.palette import sort_regimes
from reports.records import lesion_proportion, main_results
from reports.stats import mcnemar_exact
from reports.table_model import Column, ReportTable
from reports.tables import ordered_organs

LESION_KEY = ["case_id", "lesion"]


def _first_seed_calls(rows: pd.DataFrame, regime: str) -> pd.Series:
    sel = rows[rows.regime == regime]
    sel = sel[sel.seed == sel.seed.min()]
    return sel.set_index(LESION_KEY)["hit"].astype(bool)


def detection_pairs_table(per_lesion: pd.DataFrame, seed: int = 0, n_boot: int = N_BOOT) -> ReportTable:
    """Tumor-wise sensitivity of regime A vs B on shared lesions, exact McNemar, Holm per organ."""
    columns = [Column(n, "key", "text") for n in ("Organ", "Backbone", "A", "B")]
    columns += [Column("sens A"), Column("sens A 95% CI", "stat", "range"), Column("sens B"),
                Column("sens B 95% CI", "stat", "range"), Column("hit by A only", "stat", "int"),
                Column("hit by B only", "stat", "int"), Column("n lesions", "stat", "int"),
                Column("patients", "stat", "int"), Column("McNemar p", "stat", "p"), Column("Holm family", "stat", "text"),
                Column("Holm p", "stat", "p")]
    clustered = plan.CLUSTERED.format(level=plan.LEVEL, n_boot=f"{n_boot:,}", seeds="")
    table = ReportTable("detection_paired", "Paired detection comparison of regimes (tumor-wise)",
                        "Tumor-wise sensitivity (%) of two regimes on the same reference lesions of the same test "
                        "cases, pooled over folds (lowest seed of each regime). Interval: " + clustered +
                        f". p: {plan.MCNEMAR}. Holm p: {plan.HOLM_DETECTION}.", columns)
    lesions = main_results(per_lesion)
    families = []
    for organ in ordered_organs(lesions.organ.unique()):
        for backbone in sorted(lesions[lesions.organ == organ].backbone.unique()):
            rows = lesions[(lesions.organ == organ) & (lesions.backbone == backbone)]
            for a, b in itertools.combinations(sort_regimes(rows.regime.unique()), 2):
                calls = pd.concat([_first_seed_calls(rows, a), _first_seed_calls(rows, b)], axis=1, join="inner",
                                  keys=[a, b])
                families.append(plan.detection_family(organ))
                table.rows.append([organ, backbone, a, b, *_pair_cells(calls, a, b, seed, n_boot), families[-1], None])
    adjust_within_families(table, families, p_col=12, holm_col=14, rule=plan.HOLM_DETECTION)
    if not table.rows:
        table.notes.append("No organ × backbone has two regimes with scored lesions yet.")
    return table


def _pair_cells(calls: pd.DataFrame, a: str, b: str, seed: int, n_boot: int) -> list:
    only_a, only_b = int((calls[a] & ~calls[b]).sum()), int((calls[b] & ~calls[a]).sum())
    frame = calls.reset_index()
    cells = []
    for regime in (a, b):
        rows = frame.assign(seed=0, hit=frame[regime])[["case_id", "lesion", "seed", "hit"]]
        stats = lesion_proportion(rows, seed, n_boot)
        cells += [stats["value"], stats["ci"]]
    patients = frame.case_id.nunique()
    return cells + [only_a, only_b, len(frame), patients, mcnemar_exact(only_a, only_b).p_value]
