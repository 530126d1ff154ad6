"""Published DiffTumor numbers (supplementary Tables 3-7) packaged as reports/data/paper_results.csv.

Values there are percent. Our MLflow metric names map to the paper's ``metric`` column via
``OUR_TO_PAPER``; cross-organ metrics (``xorgan_early_sensitivity_<organ>``) map to
``early_tumor_sensitivity`` with ``organ`` = evaluated organ and ``source_organ`` = training organ.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

PAPER_CSV = Path(__file__).resolve().parent / "data" / "paper_results.csv"
OUR_TO_PAPER = {"tumor_dsc": "dsc", "tumor_nsd": "nsd", "xorgan_early_sensitivity": "early_tumor_sensitivity"}
PAPER_COLUMNS = ["table", "backbone", "metric", "organ", "source_organ", "regime", "fold", "value"]
AVERAGE = "average"
TABLE7 = 7  # U-Net fold 0, real / hu / difftumor


@dataclass(frozen=True)
class PaperResults:
    """Lookup of published values; every getter returns percent or ``None`` when not published."""

    values: dict[tuple, float]

    def get(self, table: int, backbone: str, metric: str, organ: str, regime: str,
            fold: int | str | None = None, source_organ: str | None = None) -> float | None:
        paper_metric = OUR_TO_PAPER.get(metric, metric)
        key = (int(table), backbone, paper_metric, organ, source_organ or organ, regime,
               "" if fold is None else str(fold))
        return self.values.get(key)

    def early_sensitivity(self, backbone: str, train_organ: str, eval_organ: str, regime: str):
        return self.get(3, backbone, "early_tumor_sensitivity", eval_organ, regime, None, train_organ)

    def fold_table(self, organ: str) -> int:
        """Tables 4/5/6 hold liver/pancreas/kidney."""
        return {"liver": 4, "pancreas": 5, "kidney": 6}.get(organ, 0)

    def fold_value(self, backbone: str, metric: str, organ: str, regime: str,
                   fold: int | str) -> tuple[float | None, int | None]:
        """A published per-fold value and the table it comes from: Tables 4-6 first, then Table 7
        (U-Net, fold 0, all three regimes: the only published Hu et al. per-fold values)."""
        for table in (self.fold_table(organ), TABLE7):
            value = self.get(table, backbone, metric, organ, regime, fold)
            if value is not None:
                return value, table
        return None, None


@lru_cache(maxsize=4)
def load_paper_results(path: str | Path = PAPER_CSV) -> PaperResults:
    """Read the packaged CSV (columns ``PAPER_COLUMNS``) into a ``PaperResults`` lookup."""
    import pandas as pd

    from tumorbench_common.errors import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: published results CSV not found")
    frame = pd.read_csv(path, dtype={"fold": str, "source_organ": str}, keep_default_na=False)
    missing = [c for c in PAPER_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: columns {missing} missing (expected {PAPER_COLUMNS})")
    values = {}
    for row in frame.itertuples(index=False):
        key = (int(row.table), row.backbone, row.metric, row.organ, row.source_organ or row.organ,
               row.regime, str(row.fold))
        values[key] = float(row.value)
    return PaperResults(values)
