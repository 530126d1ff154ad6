"""The stage interface a cell runs (train -> predict -> evaluate -> previews), swappable.

`Stages` bundles the functions with the signatures of docs/contracts.md. `real_stages()`
imports the real ones lazily; tests pass fakes with the same signatures to check the
runner's plumbing in seconds. Stage functions must be module-level (picklable) so a
`Stages` object can travel to worker processes and Slurm jobs. The pipeline that calls them
is `benchmark.cell_pipeline.run_pipeline`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from benchmark.errors import InputError


@dataclass(frozen=True)
class Stages:
    """Functions a cell calls.

    Attributes:
        make_config: ``(backbone, preset, seed, hyperparameters: dict, *, spacing) -> TrainConfig``.
        make_generator: ``(name, organ, **kwargs) -> TumorGenerator`` (synthesis.registry).
        train: ``models.trainer.train`` signature.
        predict: ``models.inference.predict_items`` signature (called with ``organ_masks``, and
            ``margin_mm`` for ``organ_filter = "none"``).
        evaluate: ``benchmark.metrics.evaluate_folder`` signature (called with ``min_lesion_mm3``,
            ``patient_threshold_mm3``; scores on each case's native grid).
        previews: ``(dataset, case_ids, pred_dir, out_dir, n) -> list[Path]`` PNG files.
        check_dataset: ``(dataset_dir) -> None``, raising InputError on a broken dataset; run
            once per dataset before the grid starts (None: no check, for fake datasets).
    """

    make_config: Callable[..., Any]
    make_generator: Callable[..., Any]
    train: Callable[..., Any]
    predict: Callable[..., Sequence[Path]]
    evaluate: Callable[..., dict]
    previews: Callable[..., list[Path]]
    check_dataset: Callable[..., None] | None = None


def real_stages() -> Stages:
    """The project's real training / inference / metrics (imported when first called)."""
    return Stages(make_config=make_train_config, make_generator=_make_generator, train=_train,
                  predict=_predict, evaluate=_evaluate, previews=_previews,
                  check_dataset=_check_dataset)


def _check_dataset(dataset_dir) -> None:
    from benchmark.data.check import ensure_valid_cached

    ensure_valid_cached(dataset_dir)


def make_train_config(backbone: str, preset: str, seed: int, hyperparameters: dict[str, Any], *,
                      spacing: Sequence[float] | None = None):
    """``models.trainer.TrainConfig`` of a cell; unknown hyperparameters raise InputError.

    ``spacing`` (mm) is the dataset's; the config takes it when it has such a field.
    """
    from models.trainer import TrainConfig

    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(hyperparameters) - known)
    if unknown:
        raise InputError(f"grid [train]: fields {unknown} are not TrainConfig fields {sorted(known)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in hyperparameters.items()}
    if spacing is not None and "spacing" in known:
        values["spacing"] = tuple(float(s) for s in spacing)
    try:
        return TrainConfig(backbone=backbone, size=preset, seed=seed, **values)
    except ValueError as exc:  # TrainConfig validates its values
        raise InputError(f"grid [train]: {exc}") from exc


def _make_generator(name: str, organ: str, **kwargs):
    """Generator ``name`` with ``organ``'s geometry. ``model_organ`` (a cross-organ cell's source)
    goes only to factories that take it: a generator without per-organ weights (Hu) has nothing
    of the source organ to use."""
    from synthesis.registry import factory_kwargs, get_entry, make_generator

    if "model_organ" in kwargs and not {"model_organ", "**"} & set(factory_kwargs(get_entry(name).load())):
        kwargs.pop("model_organ")
    return make_generator(name, organ, **kwargs)


def _train(*args, **kwargs):
    from models.trainer import train

    return train(*args, **kwargs)


def _predict(*args, **kwargs):
    from models.inference import predict_items

    return predict_items(*args, **kwargs)


def _evaluate(*args, **kwargs):
    from benchmark.metrics import evaluate_folder

    return evaluate_folder(*args, **kwargs)


def _previews(*args, **kwargs):
    from benchmark.previews import render_previews

    return render_previews(*args, **kwargs)
