"""Realism section of a scorecard: the radiomics analysis of `tumorbench radiomics`, per organ and size bin.

Same collection (benchmark.realism_collect: real tumors and size-matched synthetic ones, ROI crops),
same features (reports.radiomics) and same scores (reports.realism_analysis.score_generator: Frechet
distance and classifier two-sample AUC with permutation p, and both at a matched n next to their
real-vs-real floor), computed on all tumors of the organ and again within each radius bin
(benchmark/lesions.py bins) that has at least ``MIN_PER_BIN`` tumors on both sides.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmark.realism_collect import collect_real, collect_synthetic, with_absolute_paths
from benchmark.realism_crops import CropSettings, size_type_for_radius

MIN_PER_BIN = 4
ALL_SIZES = "all"


@dataclass(frozen=True)
class RealismSettings:
    """How many real tumors (None = all) and how much resampling (quick profile: fewer)."""

    n: int | None = None
    n_perm: int = 200
    n_repeats: int = 50
    resample_mm: float | None = 1.0
    jobs: int = 1
    size_bins: bool = True  # also score within each radius bin


def collect_crops(view: Any, generators: dict[str, dict[str, Any]], n: int | None, out: Path, seed: int,
                  progress: bool = True) -> Any:
    """tumors.csv-style table: real tumors of ``view`` and, per generator, as many size-matched ones."""
    import pandas as pd

    rng = np.random.default_rng([seed, 7])
    settings = CropSettings()
    real = collect_real(view, n, rng, out, settings, progress)
    rows = list(real)
    size_types = [size_type_for_radius(r["radius_mm"]) for r in real]
    for name, kwargs in generators.items():
        gen_rng = np.random.default_rng([seed, 7, *name.encode()])  # independent of the other generators
        rows += collect_synthetic(view, name, size_types, gen_rng, out, settings, kwargs, progress)
    table = pd.DataFrame(rows)
    table.to_csv(out / "tumors.csv", index=False)
    return table


def _score_rows(x: np.ndarray, frame: Any, generator: str, settings: RealismSettings, seed: int) -> list[dict[str, Any]]:
    from reports.realism_analysis import NullSettings, score_generator

    null = NullSettings(n_perm=settings.n_perm, n_repeats=settings.n_repeats, seed=seed)
    organ = str(frame["organ"].iloc[0])
    rows = []
    bins = [ALL_SIZES] + (sorted(set(frame["size_bin"].astype(str)), key=lambda b: float(b.split("-")[0].rstrip("+")))
                          if settings.size_bins else [])
    for size in bins:
        chosen = np.ones(len(frame), bool) if size == ALL_SIZES else (frame["size_bin"].astype(str) == size).to_numpy()
        real = x[chosen & (frame["source"] == "real").to_numpy()]
        other = x[chosen & (frame["source"] == generator).to_numpy()]
        if size != ALL_SIZES and min(len(real), len(other)) < MIN_PER_BIN:
            rows.append({"size_bin": size, "n_real": len(real), "n_other": len(other),
                         "skipped": f"fewer than {MIN_PER_BIN} tumors on a side"})
            continue
        row = score_generator(real, other, organ, generator if size == ALL_SIZES else f"{generator}@{size}", null)
        row.update({"generator": generator, "size_bin": size})
        rows.append(row)
    return rows


def realism_scores(table: Any, out: Path, generators: Sequence[str], settings: RealismSettings, seed: int,
                   progress: bool = True) -> dict[str, list[dict[str, Any]]]:
    """Extract features of every crop (``out/features.csv``) and score each generator: name -> rows."""
    from reports.radiomics import ExtractorConfig, extract_table, feature_columns
    from reports.realism_stats import clean_features

    config = ExtractorConfig(resample_mm=settings.resample_mm)
    features = extract_table(with_absolute_paths(table, out), config, jobs=settings.jobs, progress=progress)
    features = features.drop(columns=["ct_path", "mask_path"])
    features.to_csv(out / "features.csv", index=False)
    is_real = (features["source"] == "real").to_numpy()
    x, names, keep = clean_features(features, feature_columns(features.columns), reference=is_real)
    frame = features[keep].reset_index(drop=True)
    return {name: _score_rows(x, frame, name, settings, seed) if (frame["source"] == name).sum() >= 2 else
            [{"size_bin": ALL_SIZES, "n_real": int(is_real.sum()), "n_other": int((frame["source"] == name).sum()),
              "skipped": "fewer than 2 synthetic tumors with finite features"}]
            for name in generators}
