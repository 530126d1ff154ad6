"""`tumorbench scorecard`: score generators on a dataset and write cards, a leaderboard and an MLflow run.

Output folder (written atomically)::

    OUT/leaderboard.html, OUT/scorecards.json            every card side by side
    OUT/<generator>/<organ>/scorecard.json, card.html     one card, its fidelity.csv and img/
    OUT/_work/<organ>/                                    radiomics crops, tumors.csv, features.csv

A generator whose engineering section (benchmark.scorecard.engineering) lists refusals is REFUSED:
its card shows the reasons and the engineering checks and no score; `run_scorecards` returns it in
``refused`` and the CLI exits with code 3 after writing everything.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from benchmark.errors import InputError
from benchmark.realism_collect import size_probs_for
from benchmark.scorecard import collect, fidelity
from benchmark.scorecard.realism import RealismSettings, collect_crops, realism_scores

DEFAULT_EXPERIMENT = "tumorbench-scorecards"
REFUSED_EXIT = 3


@dataclass(frozen=True)
class ScorecardSettings:
    """Sizes of one scorecard run; ``quick_profile()`` is the demo's."""

    realism: RealismSettings = field(default_factory=RealismSettings)
    n_draws: int = 40  # generator calls measured for the fidelity section, per organ
    fold: int = 0  # its test cases are never read
    seed: int = 0
    quick: bool = False  # also passed to the engineering section
    n_boot: int = 2000

    @classmethod
    def quick_profile(cls, seed: int = 0, fold: int = 0) -> "ScorecardSettings":
        """The demo's: 8 real tumors, radiomics on the native grid, no permutation p-values, 3 floor
        splits, no per-bin scores, 4 draws (a classifier two-sample test costs 10 model fits and
        DiffTumor's tiny sampler seconds per call: on the demo phantoms these two dominate)."""
        realism = RealismSettings(n=8, n_perm=0, n_repeats=3, resample_mm=None, size_bins=False)
        return cls(realism, n_draws=4, fold=fold, seed=seed, quick=True)


@dataclass
class ScorecardResult:
    out: Path
    cards: list[dict[str, Any]]
    refused: dict[str, list[str]]  # "generator/organ" -> reasons
    mlflow_run_id: str | None = None


def _engineering_default() -> Callable[..., dict]:
    from benchmark.scorecard.engineering import engineering_section

    return engineering_section


def _finite(value: Any) -> Any:
    """NaN/inf -> None recursively, numpy scalars -> Python (strict JSON for the cards)."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _validate(generators: Sequence[str], datasets: Sequence[Any], fold: int) -> None:
    """Every input problem found before any generator runs."""
    from synthesis.errors import SynthesisInputError
    from synthesis.registry import get_entry

    if not generators:
        raise InputError("scorecard: name at least one generator (e.g. hu difftumor cellular)")
    for name in generators:
        try:
            get_entry(name)
        except SynthesisInputError as exc:
            raise InputError(f"scorecard: {exc}") from exc
    for dataset in datasets:
        dataset.fold(fold)  # raises on a missing splits.json / fold


def _headline(card: dict[str, Any]) -> dict[str, Any]:
    """The leaderboard's numbers of a scored card."""
    overall = next((r for r in card["realism"] if r.get("size_bin") == "all"), {})
    tests = card["fidelity"]["tests"]
    down = [r for r in (card.get("downstream") or {}).get("rows", []) if r["metric"] == "DSC"]
    eng = card["engineering"]
    ratios = [b.get("ratio") for b in (eng.get("timing") or {}).values() if isinstance(b, dict)]
    return {"c2st_auc_matched": overall.get("c2st_auc_matched"), "c2st_auc_floor": overall.get("c2st_auc_floor"),
            "frechet_pca_matched": overall.get("frechet_pca_matched"),
            "frechet_pca_floor": overall.get("frechet_pca_floor"),
            "fidelity_differs": sum(1 for t in tests if t["p_holm"] is not None and t["p_holm"] < 0.05),
            "fidelity_tests": len(tests),
            "max_abs_cliffs_delta": max((abs(t["cliffs_delta"]) for t in tests if t["cliffs_delta"] is not None),
                                        default=None),
            "time_ratio_vs_hu": float(np.nanmedian([r for r in ratios if r is not None])) if any(
                r is not None for r in ratios) else None,
            "peak_memory_mb": eng.get("peak_memory_mb"),
            "replay_ok": (eng.get("replay") or {}).get("ok"),
            "delta_dsc": down[0]["delta"] if down else None, "delta_dsc_ci": down[0]["ci"] if down else None}


def _fidelity(view: Any, real: Any, name: str, kwargs: dict[str, Any], settings: ScorecardSettings,
              card_dir: Path, progress: bool) -> dict[str, Any]:
    import pandas as pd

    rng = np.random.default_rng([settings.seed, 11, *name.encode()])
    synthetic = collect.synthetic_rows(view, name, kwargs, settings.n_draws, rng, progress)
    if synthetic.empty or "radius_mm" not in synthetic or synthetic["radius_mm"].notna().sum() == 0:
        tests: list[dict[str, Any]] = []
    else:
        tests = fidelity.compare(real, synthetic)
    pd.concat([real, synthetic], ignore_index=True).to_csv(card_dir / "fidelity.csv", index=False)
    outside = synthetic.get("outside_given_organ", pd.Series(dtype=float))
    return {"n_real_tumors": int(len(real)), "n_real_cases": int(real["case"].nunique()),
            "n_draws": settings.n_draws, "n_generator_tumors": int(synthetic.get("radius_mm", pd.Series()).notna().sum()),
            "tests": tests, "test": fidelity.TEST_NAME, "effect": fidelity.EFFECT_NAME,
            "correction": "Holm over the card's quantities",
            "outside_given_organ_max": float(outside.max()) if outside.notna().any() else None}


def score_dataset(path: str | Path, generators: dict[str, dict[str, Any]], tmp: Path, settings: ScorecardSettings,
                  engineering: Callable[..., dict], per_case: tuple[str, Any] | None,
                  progress: bool) -> list[dict[str, Any]]:
    """The cards of every generator on one dataset (organ), written under ``tmp``."""
    from benchmark.data import Dataset
    from benchmark.scorecard.downstream import downstream_section

    dataset = Dataset.open(path)
    view, organ = collect.scoring_view(dataset, settings.fold), dataset.organ
    base = {"organ": organ, "dataset": dataset.name, "dataset_path": str(dataset.root),
            "dataset_fingerprint": dataset.fingerprint(), "fold": settings.fold, "seed": settings.seed,
            "settings": asdict(settings), "realism": [], "fidelity": None, "downstream": None, "headline": None}
    cards = {}
    for name, kwargs in generators.items():
        eng = engineering(name, organ, generator_kwargs=kwargs, seed=settings.seed, quick=settings.quick,
                          progress=progress)
        cards[name] = {"generator": name, **base, "generator_kwargs": kwargs, "engineering": eng,
                       "refusals": list(eng.get("refusals") or []),
                       "status": "refused" if eng.get("refusals") else "scored"}
    scored = {n: k for n, k in generators.items() if cards[n]["status"] == "scored"}
    if scored:
        real = collect.real_rows(view, progress)
        work = tmp / "_work" / organ
        work.mkdir(parents=True, exist_ok=True)
        crops = collect_crops(view, scored, settings.realism.n, work, settings.seed, progress)
        realism = realism_scores(crops, work, list(scored), settings.realism, settings.seed, progress)
    for name in scored:
        card_dir = tmp / name / organ
        card_dir.mkdir(parents=True, exist_ok=True)
        cards[name]["realism"] = realism[name]
        cards[name]["realism_size_matched"] = size_probs_for(name, "small") is not None
        cards[name]["fidelity"] = _fidelity(view, real, name, scored[name], settings, card_dir, progress)
        if per_case is not None:
            cards[name]["downstream"] = downstream_section(per_case[1], per_case[0], name, organ, settings.seed,
                                                           settings.n_boot)
        cards[name]["headline"] = _headline(cards[name])
    return [_finite(card) for card in cards.values()]


def run_scorecards(generators: Sequence[str], dataset_paths: Sequence[str | Path], out: str | Path, *,
                   generator_kwargs: dict[str, dict[str, Any]] | None = None,
                   settings: ScorecardSettings = ScorecardSettings(), downstream: str | None = None,
                   tracking_uri: str | None = None, experiment: str | None = None,
                   engineering: Callable[..., dict] | None = None, progress: bool = True) -> ScorecardResult:
    """Score every generator on every dataset (one organ each); write ``out`` atomically and log an
    MLflow run (tag ``tumorbench.kind=scorecard``) in ``experiment`` (default: the downstream grid's
    experiment, else ``tumorbench-scorecards``).

    ``generator_kwargs``: generator -> organ -> factory kwargs (checkpoint, device, ...).
    ``engineering``: the engineering section (default benchmark.scorecard.engineering.engineering_section).
    """
    from benchmark.data import Dataset
    from benchmark.io import atomic_dir
    from benchmark.scorecard.downstream import load_per_case
    from benchmark.scorecard.publish import log_scorecard_run

    datasets = [Dataset.open(p) for p in dataset_paths]
    _validate(generators, datasets, settings.fold)
    per_case = load_per_case(downstream, tracking_uri) if downstream else None
    engineering = engineering or _engineering_default()
    out, cards = Path(out), []
    with atomic_dir(out) as tmp:
        for dataset in datasets:
            kwargs = {g: dict((generator_kwargs or {}).get(g, {}).get(dataset.organ, {})) for g in generators}
            cards += score_dataset(dataset.root, kwargs, tmp, settings, engineering, per_case, progress)
        write_cards(cards, tmp)
    result = ScorecardResult(out, cards, {f"{c['generator']}/{c['organ']}": c["refusals"] for c in cards
                                          if c["status"] == "refused"})
    result.mlflow_run_id = log_scorecard_run(result, experiment or (per_case[0] if per_case else DEFAULT_EXPERIMENT),
                                             tracking_uri)
    return result


def write_cards(cards: list[dict[str, Any]], folder: Path) -> None:
    """``<generator>/<organ>/scorecard.json`` + ``card.html`` per card, ``scorecards.json`` and the leaderboard."""
    from benchmark.io import write_json_atomic
    from reports.scorecard_html import write_card, write_leaderboard

    for card in cards:
        card_dir = folder / card["generator"] / card["organ"]
        card_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(card_dir / "scorecard.json", card)
        write_card(card, card_dir)
    write_json_atomic(folder / "scorecards.json", cards)
    write_leaderboard(cards, folder)
