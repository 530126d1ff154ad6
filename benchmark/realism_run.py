"""Realism workflows behind `tumorbench radiomics` and `tumorbench reader-study`.

Collecting tumors (running generators) happens here and in benchmark/realism_collect.py; everything
computed from the saved crops lives in reports/ (radiomics, statistics, plots, reader pages).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmark.errors import InputError
from benchmark.io import atomic_dir, write_json_atomic
from benchmark.realism_collect import collect_tumors, with_absolute_paths
from benchmark import tracking
from tumorbench_common import mlflow_tags as T



def run_radiomics(dataset_paths: Sequence[str | Path], generators: Sequence[str], n: int | None,
                  out: str | Path, *, seed: int = 0, jobs: int = 1, checkpoints: dict[str, str] | None = None,
                  device: str = "cpu", firstorder: bool = False, resample_mm: float | None = 1.0,
                  embedding: str = "auto", experiment: str | None = None, early_only: bool = False,
                  n_perm: int = 200, n_repeats: int = 50, progress: bool = True) -> dict[str, Any]:
    """Collect tumors, extract radiomics, score realism; write everything to ``out`` atomically.

    Returns the summary (also ``out/summary.json``); logs an MLflow run when ``experiment`` is
    given or a run is active.
    """
    from reports.radiomics import ExtractorConfig, extract_table
    from reports.realism_analysis import NullSettings, analyze

    if n is not None and n < 2:
        raise InputError(f"--n {n}: need at least 2 real tumors per dataset (or omit --n for all)")
    if jobs < 1:
        raise InputError(f"--jobs {jobs}: expected a positive number of processes")
    if n_perm < 0 or n_repeats < 0:
        raise InputError(f"--permutations {n_perm} / --subsamples {n_repeats}: expected numbers >= 0")
    config = ExtractorConfig(firstorder=firstorder, resample_mm=resample_mm)
    out = Path(out)
    with atomic_dir(out) as tmp:
        tumors = collect_tumors(dataset_paths, generators, n, tmp, seed=seed, checkpoints=checkpoints,
                                device=device, early_only=early_only, progress=progress)
        table = extract_table(with_absolute_paths(tumors, tmp), config, jobs=jobs, progress=progress)
        table = table.drop(columns=["ct_path", "mask_path"])
        for col in [c for c in table.columns if c.endswith("_path")]:
            table[col] = tumors[col].to_numpy()  # keep paths relative: the folder can move
        table.to_csv(tmp / "features.csv", index=False)
        write_json_atomic(tmp / "extractor_config.json", config.to_dict())
        try:
            summary = analyze(table, tmp, embedding=embedding,
                              settings=NullSettings(n_perm=n_perm, n_repeats=n_repeats, seed=seed))
        except ValueError as exc:
            raise InputError(f"radiomics on {', '.join(map(str, dataset_paths))}: {exc}") from exc
        summary.update({"datasets": [str(Path(p).resolve()) for p in dataset_paths],
                        "dataset_fingerprints": dataset_fingerprints(dataset_paths),
                        "generators": list(generators), "n": n, "seed": seed, "early_only": early_only,
                        "status_counts": table["status"].value_counts().to_dict()})
        write_json_atomic(tmp / "summary.json", summary)
    if experiment or tracking.active_fluent_run():
        summary["mlflow_run_id"] = log_realism_run(out, summary, config.to_dict(), experiment)
    return summary


def dataset_fingerprints(dataset_paths: Sequence[str | Path]) -> dict[str, str]:
    """organ -> dataset fingerprint (what grid cells log as ``dataset_fingerprint``): the report
    shows a realism run or reader study only next to a grid trained on the same data."""
    from benchmark.data import Dataset

    return {(ds := Dataset.open(p)).organ: ds.fingerprint() for p in dataset_paths}


def log_realism_run(out: Path, summary: dict[str, Any], config: dict[str, Any], experiment: str | None) -> str:
    """Log ``out``'s tables/figures as an MLflow run tagged ``tumorbench.kind=realism``.

    Nested under the active run if there is one, else a new run in ``experiment``. Log into the
    grid's experiment (``--experiment GRID``) for `tumorbench report` to show it with that grid.
    """
    tags = {T.RESULTS_DIR: str(out.resolve()), T.GENERATORS: ",".join(summary["generators"]),
            T.DATASET_FINGERPRINTS: json.dumps(summary["dataset_fingerprints"], sort_keys=True)}
    with tracking.logged_run("realism", experiment, tags=tags) as (client, run_id):
        tracking.log_values(client, run_id, params={
            "n": summary["n"], "seed": summary["seed"], "bin_width": config["bin_width"],
            "resample_mm": config["resample_mm"], "n_features": summary["n_features"],
            "n_perm": summary["n_perm"], "n_repeats": summary["n_repeats"]}, metrics=_realism_metrics(summary))
        _log_artifacts(client, run_id, out)
        return run_id


FULL_TABLES = ("features.csv", "effect_sizes.csv", "tumors.csv")


def _log_artifacts(client, run_id: str, out: Path) -> None:
    """Summary tables and figures at the artifact root (what the report shows); the per-tumor and
    per-feature tables gzipped under ``full/`` (hundreds of rows, for download, not display)."""
    import gzip
    import tempfile

    for path in sorted(out.iterdir()):
        if not path.is_file() or path.suffix not in (".csv", ".png", ".json"):
            continue
        if path.name not in FULL_TABLES:
            client.log_artifact(run_id, str(path))
            continue
        with tempfile.TemporaryDirectory() as tmp:
            packed = Path(tmp) / f"{path.name}.gz"
            packed.write_bytes(gzip.compress(path.read_bytes()))
            client.log_artifact(run_id, str(packed), artifact_path="full")


def _realism_metrics(summary: dict[str, Any]) -> dict[str, float]:
    metrics = {"n_tumors": float(summary["n_used"])}
    for row in summary["scores"]:
        key = f"{row['organ']}_{row['generator'].replace('-', '_')}"
        for name in ("frechet", "frechet_pca", "c2st_auc"):
            for suffix in ("", "_p", "_matched", "_floor"):
                value = row.get(name + suffix)
                if value is not None and value == value:  # skip NaN
                    metrics[f"{name}{suffix}_{key}"] = float(value)
    for row in summary.get("cross_organ", []):
        group = "early" if row["group"].startswith("early") else "nonearly"
        variant = "" if row["variant"] == "all" else "_sizematched"
        for name in ("accuracy", "chance", "p_value"):
            if row.get(name) == row.get(name) and name in row:
                metrics[f"xorgan_{name}_{group}{variant}"] = float(row[name])
    return metrics


def _study_cases(tumors: Any, task: str, n_real: int, n_synthetic: int, rng: np.random.Generator) -> list[Any]:
    """StudyCase objects: context crops for real-vs-synthetic, close-up ROI crops for organ."""
    import nibabel as nib
    import pandas as pd

    from reports.reader_study.make import StudyCase

    if task == "organ":
        chosen = tumors[tumors["source"] == "real"]
    else:
        real = tumors[tumors["source"] == "real"]
        parts = [real.iloc[np.sort(rng.permutation(len(real))[:n_real])]]
        generators = sorted(set(tumors["source"]) - {"real"})
        for k, name in enumerate(generators):  # n_synthetic spread evenly over the generators
            share = n_synthetic // len(generators) + (k < n_synthetic % len(generators))
            synth = tumors[tumors["source"] == name]
            parts.append(synth.iloc[np.sort(rng.permutation(len(synth))[:share])])
        chosen = pd.concat(parts)
    prefix = "roi" if task == "organ" else "context"
    cases = []
    for row in chosen.itertuples():
        image = nib.load(getattr(row, f"{prefix}_ct_path"))
        mask = np.asarray(nib.load(getattr(row, f"{prefix}_mask_path")).dataobj) > 0
        z = np.argwhere(mask)[:, 2]
        truth = row.organ if task == "organ" else ("real" if row.source == "real" else "synthetic")
        meta = {"source": row.source, "organ": row.organ, "dataset": row.dataset, "source_case": row.case_id,
                "tumor_id": row.tumor_id, "radius_mm": row.radius_mm, "size_bin": row.size_bin}
        cases.append(StudyCase(np.asarray(image.dataobj, np.float32), tuple(map(float, image.header.get_zooms()[:3])),
                               truth, int(round((z.min() + z.max()) / 2)), meta))
    return cases


def make_reader_study(dataset_paths: Sequence[str | Path], generators: Sequence[str], out: str | Path, *,
                      n_real: int, n_synthetic: int, seed: int = 0, task: str = "real-vs-synthetic",
                      checkpoints: dict[str, str] | None = None, device: str = "cpu",
                      progress: bool = True) -> dict[str, Any]:
    """Build a blinded reader study in ``out`` (reader/ page, key.csv, gallery.html, tumors/).

    real-vs-synthetic: ``n_real`` real tumors (per dataset) and ``n_synthetic`` synthetic ones
    (per dataset, spread over ``generators``). organ: ``n_real`` early real tumors per dataset,
    close-up crops, the reader names the organ.
    """
    import pandas as pd

    from reports.reader_study.gallery import write_gallery
    from reports.reader_study.make import write_study
    from reports.reader_study.server import DEFAULT_DB

    if (Path(out) / DEFAULT_DB).exists():  # make replaces the whole folder
        raise InputError(f"{Path(out) / DEFAULT_DB}: answers given on `reader-study serve` live there and `make` "
                         "would delete them; export them, then move the study away or choose another --out")
    if n_real < 1 or n_synthetic < 0:
        raise InputError(f"--n-real {n_real} / --n-synthetic {n_synthetic}: expected >= 1 and >= 0")
    if task == "real-vs-synthetic" and not generators:
        raise InputError("--generators: the real-vs-synthetic task needs at least one generator (e.g. hu)")
    gens = list(generators) if task == "real-vs-synthetic" else []
    per_generator = int(np.ceil(n_synthetic / max(1, len(gens))))
    out = Path(out)
    with atomic_dir(out) as tmp:
        cases, frames = [], []
        for index, path in enumerate(dataset_paths):
            tumors = collect_tumors([path], gens, max(n_real, per_generator), tmp / f"collection_{index}",
                                    seed=seed + index, checkpoints=checkpoints, device=device,
                                    early_only=task == "organ", progress=progress)
            tumors = with_absolute_paths(tumors, tmp / f"collection_{index}")
            rng = np.random.default_rng([seed, index, 1])
            chosen = tumors if task == "real-vs-synthetic" else tumors.iloc[rng.permutation(len(tumors))[:n_real]]
            cases += _study_cases(chosen, task, n_real, n_synthetic, rng)
            frames.append(tumors)
        study = write_study(cases, tmp, task=task, seed=seed,
                            extra={"generators": gens, "dataset_fingerprints": dataset_fingerprints(dataset_paths)})
        write_gallery(pd.concat(frames, ignore_index=True), tmp / "gallery.html")
    return study


def score_reader_study(study_dir: str | Path, answers: Sequence[str | Path], out: str | Path | None = None,
                       experiment: str | None = None, seed: int = 0) -> Any:
    """Score answer CSVs against ``study_dir/key.csv`` (reports.reader_study.score); with
    ``experiment`` also log the scores as an MLflow run tagged ``tumorbench.kind=reader_study``
    (log into the grid's experiment for `tumorbench report` to show its Table 1)."""
    import json

    from reports.reader_study.score import AnswerSheetError, score_files

    out_dir = Path(out or study_dir)
    try:
        table = score_files(study_dir, answers, out_dir, seed=seed)
    except AnswerSheetError as exc:
        raise InputError(str(exc)) from exc
    if experiment or tracking.active_fluent_run():
        study = json.loads((Path(study_dir) / "study.json").read_text())
        tags = {T.STUDY_ID: study["study_id"], T.TASK: study["task"],
                T.DATASET_FINGERPRINTS: json.dumps(study.get("dataset_fingerprints", {}), sort_keys=True)}
        with tracking.logged_run("reader_study", experiment, tags=tags) as (client, run_id):
            readers = table.loc[table["reader"] != "pooled", "reader"].nunique()
            tracking.log_values(client, run_id, params={"n_cases": study["n_cases"], "n_readers": int(readers)})
            for name in ("scores.csv", "agreement.csv", "confusion.csv", "scores.png", "scores_by_group.png",
                         "cases_by_source.png", "study.json"):
                folder = Path(study_dir) if name == "study.json" else out_dir
                if (folder / name).is_file():
                    client.log_artifact(run_id, str(folder / name))
    return table
