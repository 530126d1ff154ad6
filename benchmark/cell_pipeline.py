"""Where a cell is trained: ``run_pipeline`` takes one CellTask through train -> predict ->
evaluate -> previews with the `benchmark.stages.Stages` functions, and ``cases_used`` says which
case ids each stage sees. Stages talk through files in the cell's folder (nnU-Net style).
The MLflow run around it is `benchmark.cell_run.run_cell`; the trainer is `models.trainer.train`.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from benchmark.errors import InputError
from benchmark.io import write_json_atomic, write_text_atomic
from benchmark.stages import Stages


def run_pipeline(task, stages: Stages, *, log_metrics, report=None, progress: bool = True,
                 train_only: bool = False, before_write=None) -> dict[str, dict]:
    """Train, predict and evaluate one cell; stages talk through files in its folder.

    The model trains on the fold's training cases of the cell's roles (`Cell.training_roles`)
    and is evaluated with its final checkpoint (``cell.selection == "final"``, the default), or
    trains on them minus the inner validation split and keeps its best epoch there ("inner_val");
    it is reported on the test fold only (`benchmark.data.splits.fold_cases`).
    ``cases_used.json`` lists the exact ids, their counts and what the generator was trained on;
    ``<results>/train/`` checkpoints (the trainer resumes from ``last.pt``),
    ``predictions/<organ>/<case>.nii.gz``, ``summary.json`` + ``per_case.csv`` + ``per_lesion.csv``
    (own organ, test fold, scored on each case's native grid), ``cross_organ/<organ>/`` (the same
    for other organs), ``previews/*.png``.
    Cases are read through the grid's shared preprocessed cache ``<results root>/.cache``
    (`models.cache`). ``before_write()`` (the cell lease's owner check) reaches the trainer, which
    calls it before each metrics log and checkpoint write, and runs before each organ's
    predictions and the previews.

    Returns:
        organ -> summary dict (empty when ``train_only``).
    """
    from benchmark.data import Dataset

    cell, out = task.cell, Path(task.results_dir)
    dataset = Dataset.open(task.dataset_dir)
    if dataset.fingerprint() != cell.dataset_fingerprint:
        raise InputError(f"{dataset.root}: dataset changed since the grid was expanded "
                         f"(fingerprint {dataset.fingerprint()} != {cell.dataset_fingerprint})")
    targets = [(organ, dataset if organ == cell.organ else Dataset.open(ds_dir))
               for organ, ds_dir in task.eval_targets()]
    used = cases_used(cell, dataset, targets, task.setting("cross_organ_cases"))
    used["generator"] = _generator_record(task, dataset)
    config = stages.make_config(cell.backbone, cell.preset, cell.seed, cell.hp(), spacing=dataset.spacing)
    write_json_atomic(out / "cell.json", cell.to_dict())
    write_json_atomic(out / "train_config.json", _as_dict(config))
    write_json_atomic(out / "cases_used.json", used)
    stages.train(config, dataset.items(used["train"]), dataset.items(used["val"]), out / "train",
                 generator=_generator(task, stages), device=task.device, report=report,
                 log_metrics=log_metrics, progress=progress, cache_dir=Path(task.results_root) / ".cache",
                 before_write=before_write)
    if train_only:
        return {}
    check = before_write or _no_check
    ckpt = evaluated_checkpoint(out / "train", cell.selection)
    summaries = {}
    for organ, target in targets:
        check()  # a process that lost its cell writes no predictions or summaries either
        summaries[organ] = _predict_and_evaluate(task, stages, ckpt, target, used["test"][organ], organ, progress)
    check()
    stages.previews(dataset, used["test"][cell.organ], out / "predictions" / cell.organ, out / "previews",
                    int(task.setting("previews")))
    return summaries


def _no_check() -> None:
    pass


def cases_used(cell, dataset, targets, cross_cases: str = "val") -> dict:
    """The case ids a cell trains on, selects its checkpoint on and is tested on.

    Returns:
        ``{"fold", "roles", "selection", "train": [...], "val": [...], "test": {organ: [...]},
        "n_train_cases", "n_train_tumor_cases", "n_train_healthy_cases"}``; ``val`` is the inner
        validation split (empty with the default final-checkpoint rule; never the test fold),
        ``test`` the reported cases per evaluated organ (own organ: test fold ``cell.fold``).
    """
    from benchmark.data.splits import fold_cases

    fit, inner, test = fold_cases(dataset, cell.fold)
    if cell.selection == "final":  # every training case of the fold, no selection split
        fit, inner = [c for c in dataset.fold(cell.fold)[0]], []
    roles = cell.training_roles()
    train = training_case_ids(cell, dataset, fit)
    if not train:
        raise InputError(f"{dataset.root}: fold {cell.fold} has no training case of role {'/'.join(roles)} "
                         f"for the {cell.regime} regime")
    tests = {organ: test if organ == cell.organ else _cross_ids(target, cell.fold, cross_cases)
             for organ, target in targets}
    tumor = int(sum(bool(dataset.cases.loc[c, "has_tumor"]) for c in train))
    healthy = int(sum(dataset.cases.loc[c, "role"] == "healthy" for c in train))
    return {"fold": cell.fold, "roles": list(roles), "selection": cell.selection, "train": train, "val": inner,
            "test": tests, "n_train_cases": len(train), "n_train_tumor_cases": tumor,
            "n_train_healthy_cases": healthy}


def training_case_ids(cell, dataset, fit: list[str]) -> list[str]:
    """The cases of ``fit`` (a fold's training cases, minus the inner validation split if any) whose
    cases.csv role the cell's regime trains on (`Cell.training_roles`)."""
    roles = cell.training_roles()
    return [c for c in fit if dataset.cases.loc[c, "role"] in roles]


def _predict_and_evaluate(task, stages: Stages, ckpt: Path, dataset, case_ids, organ: str,
                          progress: bool) -> dict:
    """Predict (skipped when a previous attempt completed it), then score on each case's native
    grid and write summary.json + per_case.csv + per_lesion.csv (`benchmark.evaluation`).

    The ``organ_filter`` setting says which organ a tumor call must lie in (`organ_filter_kwargs`)."""
    out = Path(task.results_dir)
    pred_dir = out / "predictions" / organ
    marker = pred_dir / ".complete"
    if not marker.is_file():
        stages.predict(ckpt, dataset.items(case_ids), pred_dir, device=task.device,
                       overlap=float(task.setting("overlap")),
                       organ_postprocess=bool(task.setting("organ_postprocess")),
                       **organ_filter_kwargs(task.setting("organ_filter"), dataset, case_ids), progress=progress)
        write_text_atomic(marker, "\n".join(case_ids) + "\n")
    path = out / "summary.json" if organ == task.cell.organ else out / "cross_organ" / organ / "summary.json"
    summary = stages.evaluate(pred_dir, dataset, case_ids=list(case_ids), out=path, progress=progress,
                              min_lesion_mm3=float(task.setting("min_lesion_mm3")),
                              patient_threshold_mm3=float(task.setting("patient_threshold_mm3")))
    if not path.is_file():  # evaluate_folder writes it; make sure whatever evaluated did
        write_json_atomic(path, summary)
    return summary


def organ_filter_kwargs(organ_filter: str, dataset, case_ids) -> dict:
    """Prediction kwargs of the ``[evaluate] organ_filter`` setting (margin 0 mm, tumor AND organ).

    ``reference``: the target CT's reference organ label (the paper's organ pseudo-label; an
    oracle); ``predicted``: the model's own organ (its main components); ``none``: no filter."""
    if organ_filter == "reference":
        return {"organ_masks": {c: str(dataset.labels_path(c)) for c in case_ids}}
    if organ_filter == "predicted":
        return {"organ_masks": None}
    if organ_filter == "none":
        return {"organ_masks": None, "margin_mm": float("inf")}
    raise InputError(f"grid [evaluate]: field 'organ_filter' is {organ_filter!r}; expected reference|predicted|none")


def _generator(task, stages: Stages):
    """The cell's generator: the *target* organ's geometry (where tumors are placed, clipped and
    blended) with the *source* organ's weights (``model_organ``), as the official trainer's
    ``--organ_type`` / ``--organ_model``. A generator without per-organ weights (Hu) gets no
    ``model_organ`` (`benchmark.stages`): its cross-organ cell is its diagonal one on healthy CTs."""
    config = task.cell.generator_config()
    if not config:
        return None
    kwargs = {k: v for k, v in config.items() if k != "name"}
    if "checkpoint" in kwargs:
        kwargs["checkpoint"] = task.generator_checkpoint or kwargs["checkpoint"]
    if task.cell.cross_organ:
        kwargs["model_organ"] = task.cell.synth_source
    return stages.make_generator(config["name"], task.cell.organ, device=task.device, **kwargs)


def _generator_record(task, dataset) -> dict | None:
    """cases_used.json's ``generator`` entry, after checking the generator never saw this fold's
    test cases (`benchmark.generator_provenance`)."""
    from benchmark.data import Dataset
    from benchmark.generator_provenance import check_cell_generator, generator_provenance

    cell, config = task.cell, task.cell.generator_config()
    checkpoint = (task.generator_checkpoint or config.get("checkpoint")) if "checkpoint" in config else None
    datasets = {cell.organ: dataset}
    if cell.cross_organ and task.source_dataset_dir:
        datasets[cell.synth_source] = Dataset.open(task.source_dataset_dir)
    check_cell_generator(cell, checkpoint, datasets)
    return generator_provenance(config, checkpoint, cell.synth_source)


def evaluated_checkpoint(train_dir: Path, selection: str = "final") -> Path:
    """The checkpoint a cell is evaluated with: ``last.pt`` (final), or ``best.pt`` (inner_val)."""
    names = ("last.pt",) if selection == "final" else ("best.pt", "last.pt")
    for name in names:
        if (train_dir / name).is_file():
            return train_dir / name
    raise InputError(f"{train_dir}: training left no {'/'.join(names)} checkpoint")


def _cross_ids(dataset, fold: int, which: str) -> list[str]:
    """Cases of another organ's dataset used for cross-organ evaluation (its test fold k)."""
    if which == "all":
        return dataset.case_ids()
    if which == "val":
        return dataset.fold(fold)[1]
    raise InputError(f"grid [evaluate]: field 'cross_organ_cases' is {which!r}; expected val|all")


def _as_dict(config) -> dict:
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(vars(config))
