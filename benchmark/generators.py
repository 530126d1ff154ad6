"""Training the DiffTumor generators on a canonical dataset (API behind `tumorbench generator`).

Resolves the dataset into item dicts (benchmark.data.Dataset) and calls the training functions in
synthesis.difftumor, logging losses to MLflow when a run is active.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from benchmark.errors import InputError
from benchmark.io import copy_atomic

STAGE_FLAGS = {"early": "--early", "nonearly": "--non-early"}


def _items(dataset_dir: str | Path, labeled_only: bool, fold: int | None) -> tuple[Any, list[dict[str, Any]]]:
    """(Dataset, items): all cases (or labeled ones), restricted to fold ``fold``'s training cases."""
    from benchmark.data import Dataset

    dataset = Dataset.open(dataset_dir)
    ids = dataset.case_ids("labeled") if labeled_only else dataset.case_ids()
    if fold is not None:
        train_ids = set(dataset.fold(fold)[0])
        ids = [case_id for case_id in ids if case_id in train_ids]
    if not ids:
        what = "labeled cases (with real tumors)" if labeled_only else "cases"
        raise InputError(f"{dataset.root / 'cases.csv'}: no {what} to train on" + (f" in fold {fold}" if fold is not None else ""))
    items = dataset.items(ids)
    for item in items:
        item["spacing"] = dataset.spacing
    return dataset, items


def mlflow_logger() -> Callable[[dict[str, float], int], None] | None:
    """``log_metrics(dict, step)`` into the caller's active MLflow run (through the client, one request
    per step), or None when no run is active."""
    from benchmark import tracking

    active = tracking.active_fluent_run()
    return None if active is None else tracking.MetricBuffer(active[0], active[1].info.run_id).log_epoch


def _meta(dataset: Any, preset: str, fold: int | None, items: list[dict[str, Any]],
          init: str | Path | None = None) -> dict[str, Any]:
    """What the model JSON records about its training data: the dataset, the fold (None: every
    case) and the exact case ids, read back into each cell's cases_used.json
    (`benchmark.generator_provenance`)."""
    return {"preset": preset, "dataset": dataset.name, "dataset_fingerprint": dataset.fingerprint(),
            "organ_of_dataset": dataset.organ, "spacing": list(dataset.spacing), "fold": fold,
            "train_case_ids": [item["case_id"] for item in items],
            **({"init": str(init)} if init is not None else {})}


def _check_arch(arch: str) -> None:
    from synthesis.difftumor.config import ARCHS

    if arch not in ARCHS:
        raise InputError(f"--arch {arch!r}: expected one of {ARCHS}")


def train_autoencoder_on_dataset(dataset_dir: str | Path, out: str | Path, *, preset: str = "tiny",
                                 steps: int | None = None, device: str = "cpu", fold: int | None = None,
                                 progress: bool = True, arch: str = "monai", init: str | Path | None = None) -> Path:
    """Train the stage-1 autoencoder on all cases (or fold ``fold``'s training cases); returns the .pt.

    ``arch`` "official" trains the published VQGAN architecture (``preset`` then only sets the
    training); ``init`` starts from a checkpoint folder's autoencoder, e.g. the converted
    published weights (fine-tuning)."""
    from synthesis.difftumor.config import autoencoder_preset, official_autoencoder_config, with_steps
    from synthesis.difftumor.train_autoencoder import train_autoencoder

    _check_arch(arch)
    dataset, items = _items(dataset_dir, labeled_only=False, fold=fold)
    build = official_autoencoder_config if arch == "official" else autoencoder_preset
    model_config, train_config = build(preset)
    return train_autoencoder(items, out, model_config, with_steps(train_config, steps), device=device,
                             log_metrics=mlflow_logger(), progress=progress,
                             meta=_meta(dataset, preset, fold, items, init), init=init)


def train_diffusion_on_dataset(dataset_dir: str | Path, autoencoder: str | Path, out: str | Path, *, stage: str,
                               organ: str | None = None, preset: str = "tiny", steps: int | None = None,
                               device: str = "cpu", fold: int | None = None, progress: bool = True,
                               arch: str = "monai", init: str | Path | None = None) -> Path:
    """Train one organ/stage diffusion model on crops around the real tumors of labeled cases
    (``arch`` and ``init`` as in :func:`train_autoencoder_on_dataset`)."""
    from synthesis.difftumor.config import diffusion_preset, official_diffusion_config, with_steps
    from synthesis.difftumor.train_diffusion import train_diffusion

    _check_arch(arch)
    dataset, items = _items(dataset_dir, labeled_only=True, fold=fold)
    organ = organ or dataset.organ
    build = official_diffusion_config if arch == "official" else diffusion_preset
    denoiser, scheduler, train_config = build(preset, stage)
    autoencoder_dir = Path(autoencoder)
    if autoencoder_dir.is_file():
        autoencoder_dir = autoencoder_dir.parent
    return train_diffusion(items, autoencoder_dir, out, organ, stage, denoiser, scheduler,
                           with_steps(train_config, steps), device=device, log_metrics=mlflow_logger(),
                           progress=progress, meta=_meta(dataset, preset, fold, items, init), init=init)


def import_official_weights(autoencoder: str | Path, organ: str, out: str | Path, *,
                            early: str | Path | None = None, non_early: str | Path | None = None) -> Path:
    """Convert the published DiffTumor files into the checkpoint folder ``out`` (see docs/difftumor.md)."""
    from synthesis.difftumor.official_import import import_official

    if organ not in ("liver", "pancreas", "kidney"):
        raise InputError(f"--organ {organ!r}: expected liver, pancreas or kidney")
    return import_official(autoencoder, organ, out, early=early, non_early=non_early)


def train_tiny_generators(dataset_dir: str | Path, out_dir: str | Path, organ: str | None = None,
                          device: str = "cpu", *, fold: int | None = None, progress: bool = True,
                          autoencoder: str | Path | None = None) -> Path:
    """Tiny autoencoder + early + non-early models for ``organ`` in ``out_dir`` (cached), trained on
    fold ``fold``'s training cases only (None: every case; the runner always passes the cell's fold).

    A model is retrained only if its files are missing or its JSON does not match the tiny config,
    the dataset, the fold (or, for diffusion models, the autoencoder it was trained with). With
    ``autoencoder`` (an ``autoencoder.pt`` from ``tiny_autoencoder``) that one is copied into
    ``out_dir`` instead of training one. Returns ``out_dir``.
    """
    from synthesis.difftumor.config import diffusion_preset, to_dict
    from synthesis.difftumor.training import file_sha256

    out_dir = Path(out_dir)
    dataset, _ = _items(dataset_dir, labeled_only=False, fold=fold)
    organ = organ or dataset.organ
    if autoencoder is None:
        tiny_autoencoder(dataset_dir, out_dir, device=device, progress=progress, fold=fold)
    elif file_sha256(autoencoder) != _sha_or_none(out_dir / "autoencoder.pt"):
        source = Path(autoencoder)
        for path in (source.with_suffix(".json"), source):  # json first: the .pt marks it complete
            copy_atomic(path, out_dir / path.name)
    ae_sha = file_sha256(out_dir / "autoencoder.pt")
    for stage in STAGE_FLAGS:
        denoiser, scheduler, train = diffusion_preset("tiny", stage)
        wanted = {"denoiser": to_dict(denoiser), "scheduler": to_dict(scheduler), "train": to_dict(train),
                  "autoencoder_sha256": ae_sha, "dataset_fingerprint": dataset.fingerprint(), "fold": fold}
        if not _cached(out_dir / f"diffusion_{organ}_{stage}", wanted):
            train_diffusion_on_dataset(dataset_dir, out_dir, out_dir, stage=stage, organ=organ, preset="tiny",
                                       device=device, progress=progress, fold=fold)
    return out_dir


def tiny_autoencoder(dataset_dir: str | Path, out_dir: Path, *, device: str = "cpu", progress: bool = True,
                     fold: int | None = None) -> Path:
    """Train the tiny autoencoder into ``out_dir`` (fold ``fold``'s training cases) unless one with
    the same config, data and fold is there."""
    from benchmark.data import Dataset
    from synthesis.difftumor.config import autoencoder_preset, to_dict

    model_config, train_config = autoencoder_preset("tiny")
    wanted = {"model": to_dict(model_config), "train": to_dict(train_config),
              "dataset_fingerprint": Dataset.open(dataset_dir).fingerprint(), "fold": fold}
    if not _cached(out_dir / "autoencoder", wanted):
        train_autoencoder_on_dataset(dataset_dir, out_dir, preset="tiny", device=device, progress=progress, fold=fold)
    return out_dir / "autoencoder.pt"


def _sha_or_none(path: Path) -> str | None:
    from synthesis.difftumor.training import file_sha256

    return file_sha256(path) if path.is_file() else None


def _cached(stem: Path, wanted: dict[str, Any]) -> bool:
    """True when stem.pt exists and stem.json has every ``wanted`` field equal."""
    json_path, weights = stem.with_suffix(".json"), stem.with_suffix(".pt")
    if not (json_path.is_file() and weights.is_file()):
        return False
    try:
        meta = json.loads(json_path.read_text())
    except json.JSONDecodeError:
        return False
    return all(meta.get(key) == value for key, value in wanted.items())
