"""Realism analysis of a radiomics feature table: scores, effect sizes, embeddings, cross-organ.

Input: the ``features.csv`` table (one row per tumor with ``source`` = real|<generator>,
``organ``, ``radius_mm``, ``early`` and ``original_*`` feature columns). Output files in
``out_dir``: realism_scores.csv, effect_sizes.csv, effect_sizes_top.csv, embedding.png,
distributions_<organ>_<generator>.png and, with several organs, cross_organ.csv,
cross_organ_frechet.csv, cross_organ_embedding.png.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reports import realism_null as null
from reports import realism_plots as plots
from reports import realism_stats as stats
from reports.radiomics import feature_columns

PCA_COMPONENTS = 5  # Frechet distance on the top principal components (frechet_pca)
SIZE_BIN_MM = 2.0  # radius bins of the size-matched cross-organ variant


@dataclass(frozen=True)
class NullSettings:
    """How much resampling the scores get: permutations (p-values) and matched-floor repeats."""

    n_perm: int = 200
    n_repeats: int = 50
    seed: int = 0


def _statistic(seed: int):
    def statistic(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
        return {**null.frechet_scores(a, b, PCA_COMPONENTS), "c2st_auc": stats.c2st_auc(a, b, seed=seed)}

    return statistic


def score_generator(real: np.ndarray, other: np.ndarray, organ: str, generator: str,
                    settings: NullSettings) -> dict[str, Any]:
    """One row of realism_scores.csv: full-sample statistics with permutation p-values, and the
    size-matched score next to its real-vs-real floor (reports.realism_null).

    Randomness is seeded by (seed, organ) for the real splits and (seed, organ, generator) for the
    rest, so a row never depends on which other generators ran.
    """
    statistic = _statistic(settings.seed)
    rng = np.random.default_rng(null.stable_seed(settings.seed, organ, generator, "permutation"))
    full = null.permutation_test(real, other, statistic, settings.n_perm, rng)
    row: dict[str, Any] = {"organ": organ, "generator": generator, "n_real": len(real), "n_other": len(other)}
    for name, (value, p) in full.items():
        row[name], row[f"{name}_p"] = value, (p if settings.n_perm > 0 and value == value else float("nan"))
    row.update(null.matched_floor(real, other, statistic, settings.n_repeats,
                                  np.random.default_rng(null.stable_seed(settings.seed, organ, "real-split")),
                                  np.random.default_rng(null.stable_seed(settings.seed, organ, generator, "subsample"))))
    return row


def realism_scores(x: np.ndarray, frame: Any, names: list[str], settings: NullSettings) -> tuple[Any, Any]:
    """Scores (one row per organ and generator) and per-feature effect sizes vs real.

    Every score of a generator is computed from the organ's real tumors and that generator's
    tumors only; feature spaces are fitted on real tumors (reports.realism_null.RealSpace).
    """
    import pandas as pd

    rows, effects = [], []
    for organ in sorted(set(frame["organ"])):
        in_organ = (frame["organ"] == organ).to_numpy()
        real = x[in_organ & (frame["source"] == "real").to_numpy()]
        for gen in sorted(set(frame.loc[in_organ, "source"]) - {"real"}):
            other = x[in_organ & (frame["source"] == gen).to_numpy()]
            rows.append(score_generator(real, other, organ, gen, settings))
            if len(real) > 1 and len(other) > 1:
                table = stats.effect_sizes(real, other, names)
                table.insert(0, "generator", gen)
                table.insert(0, "organ", organ)
                effects.append(table)
    effects_frame = pd.concat(effects, ignore_index=True) if effects else pd.DataFrame(
        columns=["organ", "generator", "feature", "smd", "abs_smd", "ks", "ks_p", "mean_real", "mean_other"])
    return pd.DataFrame(rows), effects_frame


def _organ_tests(x: np.ndarray, organs: np.ndarray, sizes: np.ndarray, settings: NullSettings) -> list[dict[str, Any]]:
    """Organ-classifier accuracy with a permutation p, on all tumors and on a size-matched subset."""
    rng = np.random.default_rng([settings.seed, 2])
    matched = stats.size_matched(sizes, organs, SIZE_BIN_MM, rng) if len(organs) else np.zeros(0, int)
    rows = []
    for variant, idx in (("all", np.arange(len(organs))), (f"size-matched ({SIZE_BIN_MM:g} mm radius bins)", matched)):
        acc = stats.group_classifier_accuracy(x[idx], organs[idx], seed=settings.seed, n_perm=settings.n_perm)
        rows.append({"variant": variant, **acc,
                     "median_radius_mm": float(np.median(sizes[idx])) if len(idx) else float("nan")})
    return rows


def cross_organ(x: np.ndarray, frame: Any, settings: NullSettings, out_dir: Path, method: str) -> Any:
    """Seed paper Fig 2: are early real tumors of different organs alike (vs non-early ones)?

    Each group gets the organ classifier on all its tumors and on a size-matched subset (every
    organ the same radius histogram), each with a permutation p-value: an organ effect that is
    only a size difference disappears in the matched row.
    """
    import pandas as pd

    real = (frame["source"] == "real").to_numpy()
    rows, panels, frechets = [], [], []
    for label, subset in (("early (r<=10mm)", real & frame["early"].to_numpy(bool)),
                          ("non-early (r>10mm)", real & ~frame["early"].to_numpy(bool))):
        organs, sub = frame.loc[subset, "organ"].to_numpy(), x[subset]
        tests = _organ_tests(sub, organs, frame.loc[subset, "radius_mm"].to_numpy(float), settings)
        rows += [{"group": label, **t} for t in tests]
        if len(set(organs)) > 1 and min(np.unique(organs, return_counts=True)[1]) > 1:
            table = stats.pairwise_frechet(sub, organs).stack().rename("frechet").reset_index()
            table.columns = ["organ_a", "organ_b", "frechet"]
            table.insert(0, "group", label)
            frechets.append(table[table["organ_a"] < table["organ_b"]])
        coords = _embed(sub, method, settings.seed) if len(sub) > 2 else np.zeros((len(sub), 2))
        acc = tests[0]
        panels.append((coords, organs.tolist(), f"real {label}\norgan classifier accuracy {acc['accuracy']:.2f}\n"
                       f"(chance {acc['chance']:.2f}, permutation p {acc['p_value']:.2g})"))
    plots.plot_embedding_panels(panels, out_dir / "cross_organ_embedding.png", method=method.upper())
    table = pd.DataFrame(rows)
    table.to_csv(out_dir / "cross_organ.csv", index=False)
    if frechets:
        pd.concat(frechets, ignore_index=True).to_csv(out_dir / "cross_organ_frechet.csv", index=False)
    return table


def _embed(x: np.ndarray, method: str, seed: int) -> np.ndarray:
    return stats.embed_2d(x, method=method if len(x) > 5 else "pca", seed=seed)


def embedding_method(requested: str = "auto") -> str:
    """``tsne`` when requested or available (auto), else ``pca``."""
    if requested != "auto":
        return requested
    try:
        import sklearn.manifold  # noqa: F401

        return "tsne"
    except ImportError:
        return "pca"


def analyze(table: Any, out_dir: str | Path, *, top_k: int = 8, embedding: str = "auto",
            settings: NullSettings = NullSettings()) -> dict[str, Any]:
    """Write every realism table and figure for a feature table; return a JSON-able summary.

    Feature columns are chosen on the real tumors (reports.realism_stats.clean_features), so a
    generator's failed extractions only drop its own rows.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    is_real = (table["source"] == "real").to_numpy()
    x, names, keep = stats.clean_features(table, feature_columns(table.columns), reference=is_real)
    frame = table[keep].reset_index(drop=True)
    if len(frame) < 4 or not names:
        raise ValueError(f"only {len(frame)} tumors with finite features; need at least 4 for the realism analysis")
    scores, effects = realism_scores(x, frame, names, settings)
    scores.to_csv(out_dir / "realism_scores.csv", index=False)
    effects.to_csv(out_dir / "effect_sizes.csv", index=False)
    top = effects.groupby(["organ", "generator"], sort=True).head(top_k)
    top.to_csv(out_dir / "effect_sizes_top.csv", index=False)
    method = embedding_method(embedding)
    panels = []
    for organ in sorted(set(frame["organ"])):  # one panel per organ: real vs each generator
        rows = (frame["organ"] == organ).to_numpy()
        panels.append((_embed(x[rows], method, settings.seed), frame.loc[rows, "source"].tolist(),
                       f"{organ}: radiomics ({len(names)} features)"))
    plots.plot_embedding_panels(panels, out_dir / "embedding.png", method=method.upper())
    for (organ, gen), group in top.groupby(["organ", "generator"]):
        cols = [names.index(f) for f in group["feature"]]
        samples = {src: x[((frame["organ"] == organ) & (frame["source"] == src)).to_numpy()][:, cols]
                   for src in ("real", gen)}
        plots.plot_feature_distributions(samples, list(group["feature"]), out_dir / f"distributions_{organ}_{gen}.png")
    summary = {"n_tumors": int(len(table)), "n_used": int(len(frame)), "n_features": len(names),
               "embedding": method, "n_perm": settings.n_perm, "n_repeats": settings.n_repeats,
               "scores": scores.to_dict("records")}
    if frame.loc[frame["source"] == "real", "organ"].nunique() > 1:
        summary["cross_organ"] = cross_organ(x, frame, settings, out_dir, method).to_dict("records")
    return summary
