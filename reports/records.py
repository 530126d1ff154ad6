"""Per-case and per-lesion results of every finished run, pooled across folds and seeds.

One row per (run, evaluated organ, case) and per (run, evaluated organ, case, reference lesion), read
from each run's ``summary.json`` (own organ) and ``cross_organ/<organ>/summary.json``. Every pooled
number of the report (Table 3, Fig 10, Fig 14, paired tests, rankings) is computed from these two
tables, which the report also writes as ``tables/per_case.csv`` and ``tables/per_lesion.csv``.

Columns shared by both: ``case_id, fold, organ`` (organ of the evaluated case = target organ),
``backbone, regime, seed, source_organ`` (organ whose real tumors or generator trained the model),
``model_organ`` (organ the model was trained for), ``run_id``, ``age, sex``. Values are fractions
in [0, 1] as in ``summary.json``; missing values are empty.
"""
from __future__ import annotations

import pandas as pd

from reports.loader import Cell, GridData
from reports.palette import ORGANS, REAL
from tumorbench_common.cohorts import EARLY_RADIUS_MM, age_group

KEYS = ["case_id", "fold", "organ", "backbone", "regime", "seed", "source_organ", "model_organ", "run_id"]
CASE_COLUMNS = KEYS + ["age", "sex", "has_tumor", "pred_has_tumor", "tumor_dsc", "tumor_nsd", "organ_dsc",
                       "organ_nsd", "n_lesions", "n_hit", "n_false_positives"]
LESION_COLUMNS = KEYS + ["age", "sex", "lesion", "radius_mm", "volume_mm3", "size_bin", "early", "hit"]


def eval_organs(grid: GridData, cell: Cell) -> list[str]:
    """Own organ first, then every other organ the run may have been evaluated on."""
    logged = {m[len("xorgan_early_sensitivity_"):] for m in cell.metrics if m.startswith("xorgan_early_sensitivity_")}
    others = (set(logged) | set(grid.values("organ"))) - {cell.organ}
    return [cell.organ] + [o for o in ORGANS if o in others] + sorted(others - set(ORGANS))


def _rows(cell: Cell, organ: str, summary: dict) -> tuple[list[dict], list[dict]]:
    cases, lesions = [], []
    for case in summary.get("metric_per_case", []):
        base = {"case_id": str(case["case_id"]), "fold": cell.fold, "organ": organ, "backbone": cell.backbone,
                "regime": cell.regime, "seed": cell.seed, "source_organ": cell.source_organ,
                "model_organ": cell.organ, "run_id": cell.run_id, "age": case.get("age"), "sex": case.get("sex")}
        found = case.get("lesions") or []
        cases.append({**base, **{k: case.get(k) for k in ("has_tumor", "pred_has_tumor", "tumor_dsc", "tumor_nsd",
                                                          "organ_dsc", "organ_nsd")},
                      "n_lesions": len(found), "n_hit": sum(bool(les.get("detected")) for les in found),
                      "n_false_positives": len(case.get("false_positives") or [])})
        for i, les in enumerate(found):
            lesions.append({**base, "lesion": i, "radius_mm": les.get("radius_mm"), "volume_mm3": les.get("volume_mm3"),
                            "size_bin": les.get("size_bin"), "early": les.get("radius_mm", 1e9) <= EARLY_RADIUS_MM,
                            "hit": bool(les.get("detected"))})
    return cases, lesions


def collect(grid: GridData) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per_case, per_lesion) DataFrames over every finished run and every evaluated organ."""
    cases, lesions = [], []
    for key in sorted(grid.runs):
        cell = grid.runs[key]
        for organ in eval_organs(grid, cell):
            summary = grid.summary(cell, organ)
            if summary:
                c, les = _rows(cell, organ, summary)
                cases += c
                lesions += les
    per_case = pd.DataFrame(cases, columns=CASE_COLUMNS)
    per_lesion = pd.DataFrame(lesions, columns=LESION_COLUMNS)
    for frame in (per_case, per_lesion):
        frame["age_group"] = frame["age"].map(age_group)
    return per_case, per_lesion


def without_summary(grid: GridData) -> list[str]:
    """Finished runs whose own-organ summary.json is missing: absent from every pooled number."""
    return [f"{grid.runs[k].label}: summary.json not found; left out of the pooled tables"
            for k in sorted(grid.runs) if grid.summary(grid.runs[k]) is None]


def main_results(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of the main grid: own-organ evaluation of models trained with their own organ's tumors."""
    return frame[(frame.organ == frame.model_organ) & (frame.source_organ == frame.organ)]


def source_target(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows that measure the paper's Table 3 experiment for (source_organ -> organ).

    Real tumors: the source organ's model evaluated on the target's cases (model_organ == source).
    Synthetic: a model trained for the target with the source organ's generator, evaluated on the
    target (model_organ == organ). A synthetic model evaluated on another organ is not this experiment.
    """
    real = (frame.regime == REAL) & (frame.model_organ == frame.source_organ)
    synthetic = (frame.regime != REAL) & (frame.model_organ == frame.organ)
    return frame[real | synthetic]


# Patient-level readings of "the model found the patient's tumor" (docs/statistics.md), each a boolean
# derived from per_case.csv columns; a scoring rule that adds a column (e.g. the official patient call)
# adds one entry here and every table follows.
PATIENT_READINGS = {
    "rule call": lambda rows: rows["pred_has_tumor"].astype(bool),  # the official rule: tumor ∧ organ, 3x3x3 erosion at 1 mm, > th mm³ left, anywhere in the CT
    "lesion hit": lambda rows: rows["n_hit"].fillna(0).astype(float) > 0,  # >= 1 reference lesion detected
}
SPECIFICITY_READING = "rule call"  # a tumor-free patient has no lesion to hit: only a call can be wrong


def proportion(rows: pd.DataFrame, col: str = "hit") -> dict:
    """Pooled proportion of true ``col`` over ``rows`` (one row per patient and seed, folds pooled),
    in percent, with a Wilson CI (patients are independent).

    With several seeds every case appears once per seed: the value is the mean over seeds of the
    pooled proportion, k is the mean count, n the count of one seed, and ``seed_sd`` the sample sd of
    the per-seed proportions (None for one seed).
    """
    from reports.stats import wilson_ci

    if rows.empty:
        return {"value": None, "ci": None, "k": None, "n": 0, "seeds": 0, "seed_sd": None}
    per_seed = rows.assign(_v=rows[col].astype(float)).groupby("seed")["_v"].agg(["sum", "count"])
    k, n = float(per_seed["sum"].mean()), int(round(per_seed["count"].mean()))
    lo, hi = wilson_ci(k, n)
    return {"value": 100.0 * k / n, "ci": (100.0 * lo, 100.0 * hi), "k": k, "n": n, "seeds": len(per_seed),
            "seed_sd": _seed_sd(per_seed)}


def _seed_sd(per_seed: pd.DataFrame) -> float | None:
    ratios = 100.0 * per_seed["sum"] / per_seed["count"]
    return float(ratios.std(ddof=1)) if len(per_seed) > 1 else None


def lesion_proportion(rows: pd.DataFrame, seed: int = 0, n_boot: int | None = None) -> dict:
    """Tumor-wise proportion of hit lesions (per_lesion rows, folds pooled) with a patient-clustered
    interval (``reports.bootstrap.clustered_proportion``; seeds resampled too when there are several).

    Only patients present in every seed count. Keys as ``proportion`` plus ``deff``."""
    from reports.bootstrap import N_BOOT, clustered_proportion, stream

    if rows.empty:
        return {"value": None, "ci": None, "k": None, "n": 0, "seeds": 0, "seed_sd": None, "deff": None}
    hits = rows.pivot_table(index="seed", columns="case_id", values="hit", aggfunc="sum").dropna(axis=1)
    lesions = rows[rows.seed == hits.index[0]].groupby("case_id").size()[hits.columns]
    rng = stream(seed, "lesions", *sorted(map(str, hits.columns)), len(rows))
    out = clustered_proportion(hits.to_numpy(float), lesions.to_numpy(float), rng, n_boot or N_BOOT)
    per_seed = pd.DataFrame({"sum": hits.sum(axis=1), "count": float(lesions.sum())})
    return {**out, "seeds": len(hits), "seed_sd": _seed_sd(per_seed)}


def seed_mean(rows: pd.DataFrame, value: str) -> pd.Series:
    """Per-case value averaged over seeds (index: case_id); NaN/None values dropped first."""
    rows = rows.dropna(subset=[value])
    return rows.groupby("case_id")[value].mean().astype(float)
