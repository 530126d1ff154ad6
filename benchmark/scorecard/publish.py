"""Log a scorecard folder as an MLflow run tagged ``tumorbench.kind=scorecard``.

Artifacts mirror the output folder without the radiomics crops (``_work/``): leaderboard.html,
scorecards.json and ``<generator>/<organ>/`` (scorecard.json, card.html, fidelity.csv, img/), so
`tumorbench report` can copy the cards of its grid's experiment next to the report.
"""
from __future__ import annotations

import json
from typing import Any

HEADLINE_METRICS = ("c2st_auc_matched", "c2st_auc_floor", "frechet_pca_matched", "frechet_pca_floor",
                    "fidelity_differs", "max_abs_cliffs_delta", "time_ratio_vs_hu", "peak_memory_mb", "delta_dsc")


def _metrics(cards: list[dict[str, Any]]) -> dict[str, float]:
    metrics = {}
    for card in cards:
        key = f"{card['organ']}_{card['generator'].replace('-', '_')}"
        metrics[f"refused_{key}"] = float(card["status"] == "refused")
        for name in HEADLINE_METRICS:
            value = (card.get("headline") or {}).get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics[f"{name}_{key}"] = float(value)
    return metrics


def log_scorecard_run(result: Any, experiment: str, tracking_uri: str | None = None) -> str:
    """Log ``result.out`` (a ScorecardResult) into ``experiment``; return the run id."""
    from benchmark import tracking
    from tumorbench_common import mlflow_tags as T

    cards = result.cards
    tags = {T.RESULTS_DIR: str(result.out.resolve()), T.GENERATORS: ",".join(sorted({c["generator"] for c in cards})),
            T.ORGANS: ",".join(sorted({c["organ"] for c in cards})), T.REFUSED: ",".join(sorted(result.refused)),
            T.DATASET_FINGERPRINTS: json.dumps({c["organ"]: c["dataset_fingerprint"] for c in cards}, sort_keys=True)}
    with tracking.logged_run("scorecard", experiment, tracking_uri, tags=tags) as (client, run_id):
        params = {"fold": cards[0]["fold"], "seed": cards[0]["seed"], "quick": cards[0]["settings"]["quick"]} if cards else {}
        tracking.log_values(client, run_id, params=params, metrics=_metrics(cards))
        for name in ("leaderboard.html", "scorecards.json"):
            client.log_artifact(run_id, str(result.out / name))
        for card in cards:
            rel = f"{card['generator']}/{card['organ']}"
            client.log_artifacts(run_id, str(result.out / rel), artifact_path=rel)
        return run_id
