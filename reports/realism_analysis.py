"""Realism analysis of a radiomics feature table: scores, effect sizes, embeddings, cross-organ.

Input: the ``features.csv`` table (one row per tumor with ``source`` = real|<generator>,
``organ``, ``radius_mm``, ``early`` and ``original_*`` feature columns). Output files in
``out_dir``: realism_scores.csv, effect_sizes.csv, effect_sizes_top.csv, embedding.png,
distributions_<organ>_<generator>.png and, with several organs, cross_organ.csv,
cross_organ_frechet.csv, cross_organ_embedding.png.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from reports import realism_plots as plots
from reports import realism_stats as stats
from reports.radiomics import feature_columns

PCA_COMPONENTS = 5  # Frechet distance on the top principal components (frechet_pca)


def _pair_scores(real: np.ndarray, other: np.ndarray, real_pc: np.ndarray, other_pc: np.ndarray,
                 seed: int) -> dict[str, Any]:
    """Scores of two z-scored samples (+ their principal-component projections); every row of
    an organ shares one scaling and one set of axes."""
    test = stats.classifier_two_sample_test(real, other, seed=seed)
    enough = min(len(real), len(other)) > 1
    return {"n_real": len(real), "n_other": len(other),
            "frechet": stats.frechet_distance(real, other) if enough else float("nan"),
            "frechet_pca": stats.frechet_distance(real_pc, other_pc) if enough else float("nan"),
            "c2st_auc": test.auc, "c2st_ci_low": test.ci_low, "c2st_ci_high": test.ci_high}


def _top_components(xz: np.ndarray, k: int = PCA_COMPONENTS) -> np.ndarray:
    """(N, k) projection of z-scored features on their first ``k`` principal axes.

    With tens of tumors and 91 features the full covariances are rank deficient and the
    Frechet distance is mostly estimation noise; a few components keep the main differences.
    """
    centred = xz - xz.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    return centred @ axes[: min(k, axes.shape[0])].T


def realism_scores(x: np.ndarray, frame: Any, names: list[str], seed: int, top_k: int) -> tuple[Any, Any]:
    """Scores and effect sizes of every generator vs real, per organ.

    Features are z-scored once per organ with the mean/SD of all its tumors (real and every
    generator), so rows of an organ share one scale and a near-constant real feature cannot
    blow up. A ``real-split`` row (real tumors split in two random halves) gives the noise
    floor of both scores at that sample size.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows, effects = [], []
    for organ in sorted(set(frame["organ"])):
        in_organ = (frame["organ"] == organ).to_numpy()
        xz, pcs = np.zeros_like(x), np.zeros((len(x), PCA_COMPONENTS))
        xz[in_organ] = stats.standardize(x[in_organ])[0]
        projected = _top_components(xz[in_organ])
        pcs[in_organ, : projected.shape[1]] = projected
        is_real = in_organ & (frame["source"] == "real").to_numpy()
        real, real_pc = xz[is_real], pcs[is_real]
        half = rng.permutation(len(real))
        a, b = half[: len(real) // 2], half[len(real) // 2:]
        rows.append({"organ": organ, "generator": "real-split",
                     **_pair_scores(real[a], real[b], real_pc[a], real_pc[b], seed)})
        for gen in sorted(set(frame.loc[in_organ, "source"]) - {"real"}):
            is_gen = in_organ & (frame["source"] == gen).to_numpy()
            rows.append({"organ": organ, "generator": gen,
                         **_pair_scores(real, xz[is_gen], real_pc, pcs[is_gen], seed)})
            if len(real) > 1 and is_gen.sum() > 1:
                table = stats.effect_sizes(x[is_real], x[is_gen], names)
                table.insert(0, "generator", gen)
                table.insert(0, "organ", organ)
                effects.append(table)
    effects_frame = pd.concat(effects, ignore_index=True) if effects else pd.DataFrame(
        columns=["organ", "generator", "feature", "smd", "abs_smd", "ks", "ks_p", "mean_real", "mean_other"])
    return pd.DataFrame(rows), effects_frame


def cross_organ(x: np.ndarray, frame: Any, seed: int, out_dir: Path, method: str) -> Any:
    """Seed paper Fig 2: are early real tumors of different organs alike (vs non-early ones)?"""
    import pandas as pd

    real = (frame["source"] == "real").to_numpy()
    rows, panels, frechets = [], [], []
    for label, subset in (("early (r<=10mm)", real & frame["early"].to_numpy(bool)),
                          ("non-early (r>10mm)", real & ~frame["early"].to_numpy(bool))):
        organs = frame.loc[subset, "organ"].to_numpy()
        sub = x[subset]
        acc = stats.group_classifier_accuracy(sub, organs, seed=seed) if len(sub) else {}
        rows.append({"group": label, **acc})
        if len(set(organs)) > 1 and min(np.unique(organs, return_counts=True)[1]) > 1:
            table = stats.pairwise_frechet(sub, organs).stack().rename("frechet").reset_index()
            table.columns = ["organ_a", "organ_b", "frechet"]
            table.insert(0, "group", label)
            frechets.append(table[table["organ_a"] < table["organ_b"]])
        coords = _embed(sub, method, seed) if len(sub) > 2 else np.zeros((len(sub), 2))
        panels.append((coords, organs.tolist(), f"real {label}\norgan classifier accuracy "
                       f"{acc.get('accuracy', float('nan')):.2f} (chance {acc.get('chance', float('nan')):.2f})"))
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


def analyze(table: Any, out_dir: str | Path, *, seed: int = 0, top_k: int = 8,
            embedding: str = "auto") -> dict[str, Any]:
    """Write every realism table and figure for a feature table; return a JSON-able summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    x, names, keep = stats.clean_features(table, feature_columns(table.columns))
    frame = table[keep].reset_index(drop=True)
    if len(frame) < 4 or not names:
        raise ValueError(f"only {len(frame)} tumors with finite features; need at least 4 for the realism analysis")
    scores, effects = realism_scores(x, frame, names, seed, top_k)
    scores.to_csv(out_dir / "realism_scores.csv", index=False)
    effects.to_csv(out_dir / "effect_sizes.csv", index=False)
    top = effects.groupby(["organ", "generator"], sort=True).head(top_k)
    top.to_csv(out_dir / "effect_sizes_top.csv", index=False)
    method = embedding_method(embedding)
    panels = []
    for organ in sorted(set(frame["organ"])):  # one panel per organ: real vs each generator
        rows = (frame["organ"] == organ).to_numpy()
        panels.append((_embed(x[rows], method, seed), frame.loc[rows, "source"].tolist(),
                       f"{organ}: radiomics ({len(names)} features)"))
    plots.plot_embedding_panels(panels, out_dir / "embedding.png", method=method.upper())
    for (organ, gen), group in top.groupby(["organ", "generator"]):
        cols = [names.index(f) for f in group["feature"]]
        samples = {src: x[((frame["organ"] == organ) & (frame["source"] == src)).to_numpy()][:, cols]
                   for src in ("real", gen)}
        plots.plot_feature_distributions(samples, list(group["feature"]), out_dir / f"distributions_{organ}_{gen}.png")
    summary = {"n_tumors": int(len(table)), "n_used": int(len(frame)), "n_features": len(names),
               "embedding": method, "scores": scores.to_dict("records")}
    if frame.loc[frame["source"] == "real", "organ"].nunique() > 1:
        summary["cross_organ"] = cross_organ(x, frame, seed, out_dir, method).to_dict("records")
    return summary
