"""Patient-level, stratified k-fold splits written once to ``splits.json`` (nnU-Net habit).

Cases are grouped by patient (the optional ``patient_id`` column of cases.csv, else the case
id), stratified by (role, has_tumor) and dealt round-robin over the folds after a seeded
shuffle, so every stratum is spread evenly and fold sizes differ by at most one patient.
An existing splits.json is never regenerated (results computed on it stay comparable)
unless ``force=True``.

Each fold is ``{"train": [...], "val": [...], "inner_val": [...]}``: ``val`` is the held-out
*test* fold k (the nnU-Net name is kept), touched only by the reported evaluation;
``inner_val`` is a patient-level, stratified, seeded fifth of ``train`` used for checkpoint
selection and Optuna objectives (the model trains on ``train - inner_val``). A splits.json
written before inner_val existed gets it added once (the folds themselves are kept).
`benchmark.data.official_folds` reads the DiffTumor repository's fold lists instead.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from benchmark.data.layout import Dataset
from benchmark.errors import InputError
from benchmark.io import write_json_atomic

DEFAULT_SEED = 12345
DEFAULT_FOLDS = 5


INNER_FOLDS = 5  # inner validation = one fold of a 5-fold split of the training patients


def compute_splits(cases, n_folds: int = DEFAULT_FOLDS, seed: int = DEFAULT_SEED) -> list[dict[str, list[str]]]:
    """Folds for a cases table (pandas DataFrame with case_id, role, has_tumor[, patient_id]).

    Returns:
        ``n_folds`` dicts ``{"train", "val", "inner_val"}`` with sorted case ids; the val
        sets are disjoint and cover every case; all cases of a patient share one val fold;
        ``inner_val`` is a subset of ``train`` (see the module docstring).
    """
    vals = _deal(cases, n_folds, seed)
    folds = []
    for val in vals:
        val_set = set(val)
        folds.append({"train": sorted(str(c) for c in cases["case_id"] if str(c) not in val_set), "val": val})
    return add_inner_val(folds, cases, seed)


def _deal(cases, n_folds: int, seed: int) -> list[list[str]]:
    """Val case ids of ``n_folds`` patient-level folds, strata dealt round-robin after a shuffle."""
    patients = _patient_strata(cases)
    if len(patients) < n_folds:
        raise InputError(f"cases.csv: {len(patients)} patients, need at least n_folds={n_folds} for the splits")
    rng = np.random.default_rng(seed)
    fold_of_patient: dict[str, int] = {}
    counter = 0  # continues across strata so the fold sizes stay balanced overall
    for stratum in sorted(set(patients.values())):
        members = sorted(p for p, s in patients.items() if s == stratum)
        for patient in rng.permutation(members):
            fold_of_patient[str(patient)] = counter % n_folds
            counter += 1
    patient_col = _patient_column(cases)
    return [sorted(str(c) for c, p in zip(cases["case_id"], patient_col) if fold_of_patient[p] == k)
            for k in range(n_folds)]


def inner_val_ids(cases, train_ids, seed: int) -> list[str]:
    """Patient-level, stratified, seeded inner validation cases carved from ``train_ids``."""
    keep = {str(c) for c in train_ids}
    sub = cases[[str(c) in keep for c in cases["case_id"]]]
    n_patients = len(_patient_strata(sub))
    if n_patients < 2:
        raise InputError(f"cases.csv: {n_patients} training patient(s), need 2 to carve an inner validation split")
    return _deal(sub, min(INNER_FOLDS, n_patients), seed)[0]


def add_inner_val(folds: list[dict], cases, seed: int = DEFAULT_SEED) -> list[dict]:
    """Folds with ``inner_val`` added where missing (fold k uses seed ``seed + 1 + k``)."""
    return [fold if "inner_val" in fold else {**fold, "inner_val": inner_val_ids(cases, fold["train"], seed + 1 + k)}
            for k, fold in enumerate(folds)]


def _patient_column(cases) -> list[str]:
    if "patient_id" in cases.columns:
        return [str(p) if p == p and str(p) else str(c) for p, c in zip(cases["patient_id"], cases["case_id"])]
    return [str(c) for c in cases["case_id"]]


def _patient_strata(cases) -> dict[str, tuple[str, int]]:
    """Patient -> (role, has_tumor); a patient with any labeled/tumor case counts as such."""
    strata: dict[str, tuple[str, int]] = {}
    for patient, role, tumor in zip(_patient_column(cases), cases["role"], cases["has_tumor"]):
        prev_role, prev_tumor = strata.get(patient, ("healthy", 0))
        new_role = "labeled" if "labeled" in (prev_role, str(role)) else "healthy"
        strata[patient] = (new_role, max(prev_tumor, int(tumor)))
    return strata


def make_splits(dataset: str | Path | Dataset, n_folds: int = DEFAULT_FOLDS, seed: int = DEFAULT_SEED,
                force: bool = False) -> Path:
    """Write ``splits.json`` for the dataset unless it already exists (or ``force``); an
    existing file lacking ``inner_val`` gets it added (its folds are kept).

    Returns:
        Path of splits.json (existing or new).
    """
    ds = dataset if isinstance(dataset, Dataset) else Dataset.open(dataset)
    path = ds.root / "splits.json"
    if path.is_file() and not force:
        if any("inner_val" not in fold for fold in ds.splits):
            write_json_atomic(path, add_inner_val(ds.splits, ds.cases, seed))
            ds._splits = None
        return path
    if n_folds < 2:
        raise InputError(f"--folds {n_folds}: expected at least 2 folds")
    write_json_atomic(path, compute_splits(ds.cases, n_folds=n_folds, seed=seed))
    ds._splits = None  # re-read on next access
    return path


def fold_cases(ds: Dataset, k: int, folds: list[dict] | None = None) -> tuple[list[str], list[str], list[str]]:
    """(fit, inner_val, test) case ids of fold ``k``: the model trains on ``fit``, selects its
    checkpoint on ``inner_val`` and is reported on ``test`` (pairwise disjoint). ``folds``:
    splits to read instead of ``ds.splits`` (a dry run's in-memory ``add_inner_val``)."""
    if folds is None:
        folds, (train, test) = ds.splits, ds.fold(k)  # ds.fold checks k's range
    else:
        train, test = list(folds[k]["train"]), list(folds[k]["val"])
    inner = folds[k].get("inner_val")
    if inner is None:
        raise InputError(f"{ds.root / 'splits.json'}: fold {k} has no inner_val; run "
                         f"`tumorbench data splits {ds.root}` once to add it")
    inner_set, test_set = set(inner), set(test)
    if test_set & (set(train) | inner_set):
        raise InputError(f"{ds.root / 'splits.json'}: fold {k}: test (val) cases "
                         f"{sorted(test_set & (set(train) | inner_set))[:5]} also in train/inner_val")
    return [c for c in train if c not in inner_set], list(inner), list(test)


def splits_problems(ds: Dataset) -> list[str]:
    """Problems of an existing splits.json: unknown ids, cases in no / several val folds, overlap."""
    path = ds.root / "splits.json"
    if not path.is_file():
        return []
    try:
        folds = ds.splits
    except InputError as exc:
        return [str(exc)]
    known = set(ds.case_ids())
    problems, seen = [], {}
    for k, fold in enumerate(folds):
        if not isinstance(fold, dict) or not {"train", "val"} <= set(fold):
            return [f"{path}: fold {k} is not a {{'train': [...], 'val': [...]}} object"]
        for case in sorted(set(fold["train"]) & set(fold["val"])):
            problems.append(f"{path}: fold {k}: case {case} is in both train and val")
        for case in sorted((set(fold["train"]) | set(fold["val"])) - known):
            problems.append(f"{path}: fold {k}: case {case} is not listed in cases.csv")
        for case in sorted(set(fold.get("inner_val", [])) - set(fold["train"])):
            problems.append(f"{path}: fold {k}: inner_val case {case} is not in train")
        for case in fold["val"]:
            seen.setdefault(case, []).append(k)
    # Official DiffTumor folds keep the healthy CTs in every train list and in no val list, and
    # leave out ("excluded" in every fold) the cases the paper's lists do not name.
    always_train = set.intersection(*(set(f["train"]) for f in folds)) if folds else set()
    never_used = set.intersection(*(set(f.get("excluded", ())) for f in folds)) if folds else set()
    for case in sorted(known):
        if len(seen.get(case, [])) != 1 and not ((case in always_train or case in never_used) and not seen.get(case)):
            problems.append(f"{path}: case {case} is in the val set of folds {seen.get(case, [])}, expected exactly one"
                            " (run `tumorbench data splits --force` after adding cases)")
    return problems
