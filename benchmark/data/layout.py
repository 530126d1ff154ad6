"""Reading the canonical dataset layout (see docs/contracts.md).

DATASET/dataset.json, cases.csv, cases/<id>/{ct,labels}.nii.gz, splits.json.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.errors import InputError
from tumorbench_common.cohorts import sex_or_none

ORGANS = ("liver", "pancreas", "kidney")
LABELS = {"background": 0, "organ": 1, "tumor": 2}
CASE_COLUMNS = ["case_id", "age", "sex", "has_tumor", "role", "source"]
ROLES = ("labeled", "healthy")
NATIVE_LABELS = "labels_native.nii.gz"  # written by import when it resamples a case


@dataclass
class Dataset:
    """A dataset in the canonical layout. Open with ``Dataset.open(path)``."""

    root: Path
    meta: dict[str, Any]
    cases: Any  # pandas.DataFrame indexed by case_id
    _splits: list[dict[str, list[str]]] | None = field(default=None, repr=False)

    @classmethod
    def open(cls, path: str | Path) -> "Dataset":
        import pandas as pd

        root = Path(path).resolve()
        meta_path, cases_path = root / "dataset.json", root / "cases.csv"
        if not root.is_dir():
            raise InputError(f"{root}: dataset folder not found")
        if not meta_path.is_file():
            raise InputError(f"{meta_path}: missing (expected the canonical dataset.json)")
        if not cases_path.is_file():
            raise InputError(f"{cases_path}: missing (expected columns {','.join(CASE_COLUMNS)})")
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(f"{meta_path}: not valid JSON ({exc})") from exc
        for key in ("name", "organ", "spacing"):
            if key not in meta:
                raise InputError(f"{meta_path}: field {key!r} missing")
        if meta["organ"] not in ORGANS:
            raise InputError(f"{meta_path}: field 'organ' is {meta['organ']!r}, expected one of {ORGANS}")
        cases = pd.read_csv(cases_path, dtype={"case_id": str, "sex": str}, keep_default_na=True)
        missing = [c for c in CASE_COLUMNS if c not in cases.columns]
        if missing:
            raise InputError(f"{cases_path}: columns {missing} missing (expected {CASE_COLUMNS})")
        bad_roles = sorted(set(cases["role"]) - set(ROLES))
        if bad_roles:
            raise InputError(f"{cases_path}: field 'role' has {bad_roles}, expected labeled|healthy")
        cases = cases.set_index("case_id", drop=False)
        return cls(root=root, meta=meta, cases=cases)

    # --- identity -------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.meta["name"])

    @property
    def organ(self) -> str:
        return str(self.meta["organ"])

    @property
    def spacing(self) -> tuple[float, float, float]:
        return tuple(float(s) for s in self.meta["spacing"])  # type: ignore[return-value]

    def fingerprint(self) -> str:
        """Short hash of dataset.json + cases.csv + splits.json (if present)."""
        digest = hashlib.sha256()
        for name in ("dataset.json", "cases.csv", "splits.json"):
            path = self.root / name
            if path.is_file():
                digest.update(name.encode() + path.read_bytes())
        return digest.hexdigest()[:12]

    # --- files ----------------------------------------------------------------------
    def case_dir(self, case_id: str) -> Path:
        return self.root / "cases" / case_id

    def ct_path(self, case_id: str) -> Path:
        return self.case_dir(case_id) / "ct.nii.gz"

    def labels_path(self, case_id: str) -> Path:
        return self.case_dir(case_id) / "labels.nii.gz"

    def native_labels_path(self, case_id: str) -> Path:
        """The case's labels on its original (scanner) grid, RAS-oriented: what it is scored
        against. ``labels_native.nii.gz`` when import resampled the case, else ``labels.nii.gz``
        (phantoms and imports at the native spacing are already on it)."""
        native = self.case_dir(case_id) / NATIVE_LABELS
        return native if native.is_file() else self.labels_path(case_id)

    def case_ids(self, role: str | None = None) -> list[str]:
        frame = self.cases if role is None else self.cases[self.cases["role"] == role]
        return [str(c) for c in frame["case_id"]]

    def items(self, case_ids: list[str]) -> list[dict[str, Any]]:
        """Training/inference items (plain dicts, see docs/contracts.md)."""
        out = []
        for case_id in case_ids:
            if case_id not in self.cases.index:
                raise InputError(f"{self.root / 'cases.csv'}: case {case_id!r} not listed")
            row = self.cases.loc[case_id]
            out.append({
                "case_id": case_id,
                "image": str(self.ct_path(case_id)),
                "label": str(self.labels_path(case_id)),
                "healthy": row["role"] == "healthy",
                "age": _optional_int(row["age"]),
                "sex": sex_or_none(row["sex"]),
            })
        return out

    # --- splits ---------------------------------------------------------------------
    @property
    def splits(self) -> list[dict[str, list[str]]]:
        if self._splits is None:
            path = self.root / "splits.json"
            if not path.is_file():
                raise InputError(f"{path}: missing; run `tumorbench data splits {self.root}` first")
            try:
                self._splits = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}: not valid JSON ({exc})") from exc
        return self._splits

    def fold(self, k: int) -> tuple[list[str], list[str]]:
        """(train case ids, val case ids) of fold ``k``."""
        splits = self.splits
        if not 0 <= k < len(splits):
            raise InputError(f"{self.root / 'splits.json'}: fold {k} requested, only {len(splits)} folds")
        return list(splits[k]["train"]), list(splits[k]["val"])


def _optional_int(value: Any) -> int | None:
    try:
        if value is None or value != value:  # NaN check without numpy
            return None
        return int(value)
    except (TypeError, ValueError):
        return None
