"""The stage functions a cell runs (train -> predict -> evaluate -> previews), swappable.

`Stages` bundles the functions with the signatures of docs/contracts.md. `real_stages()`
imports the real ones lazily; tests pass fakes with the same signatures to check the
runner's plumbing in seconds. Stage functions must be module-level (picklable) so a
`Stages` object can travel to worker processes and Slurm jobs.
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
        predict: ``models.inference.predict_items`` signature (called with ``organ_masks``).
        evaluate: ``benchmark.metrics.evaluate_folder`` signature.
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
                  predict=_predict, evaluate=_evaluate, previews=render_previews,
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
    from synthesis.registry import make_generator

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


def render_previews(dataset, case_ids: Sequence[str], pred_dir: Path, out_dir: Path,
                    n: int = 3) -> list[Path]:
    """PNG per case: the axial slice with most ground-truth tumor (else organ), CT in a
    soft-tissue window, ground truth contours in green, prediction in red.

    Returns the written files (cases without a prediction are skipped).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from benchmark.io import atomic_path, load_nifti

    written = []
    for case_id in list(case_ids)[:n]:
        pred_path = Path(pred_dir) / f"{case_id}.nii.gz"
        if not pred_path.is_file():
            continue
        ct = np.asarray(load_nifti(dataset.ct_path(case_id), "CT").dataobj, dtype=np.float32)
        gt = np.asarray(load_nifti(dataset.labels_path(case_id), "labels").dataobj)
        pred = np.asarray(load_nifti(pred_path, "prediction").dataobj)
        area = (gt == 2).sum(axis=(0, 1)) if (gt == 2).any() else (gt >= 1).sum(axis=(0, 1))
        z = int(np.argmax(area))
        fig, ax = plt.subplots(figsize=(4, 4), dpi=80)
        ax.imshow(np.clip(ct[:, :, z].T, -175, 250), cmap="gray", origin="lower")
        for mask, color in ((gt, "lime"), (pred, "red")):
            for label, style in ((1, ":"), (2, "-")):
                if (mask[:, :, z] == label).any():
                    ax.contour((mask[:, :, z] == label).T, levels=[0.5], colors=color, linestyles=style)
        ax.set_title(f"{case_id} z={z}  green=truth red=pred", fontsize=8)
        ax.axis("off")
        out = Path(out_dir) / f"{case_id}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp:
            fig.savefig(tmp, bbox_inches="tight")
        plt.close(fig)
        written.append(out)
    return written


# --- the pipeline of one cell ----------------------------------------------------------
def run_pipeline(task, stages: Stages, *, log_metrics, report=None, progress: bool = True,
                 train_only: bool = False) -> dict[str, dict]:
    """Train, predict and evaluate one cell; stages talk through files in its folder.

    The model trains on the fold's training cases of the cell's roles (`Cell.training_roles`)
    minus the inner validation split, selects its checkpoint on the inner validation split
    and is reported on the test fold only (`benchmark.data.splits.fold_cases`).
    ``cases_used.json`` lists the exact ids; ``<results>/train/`` checkpoints (the trainer
    resumes from ``last.pt``), ``predictions/<organ>/<case>.nii.gz``, ``summary.json`` (own
    organ, test fold), ``cross_organ/<organ>/summary.json`` (other organs), ``previews/*.png``.
    Cases are read through the grid's shared preprocessed cache ``<results root>/.cache``
    (`models.cache`).

    Returns:
        organ -> summary dict (empty when ``train_only``).
    """
    from benchmark.data import Dataset
    from benchmark.io import write_json_atomic

    cell, out = task.cell, Path(task.results_dir)
    dataset = Dataset.open(task.dataset_dir)
    if dataset.fingerprint() != cell.dataset_fingerprint:
        raise InputError(f"{dataset.root}: dataset changed since the grid was expanded "
                         f"(fingerprint {dataset.fingerprint()} != {cell.dataset_fingerprint})")
    targets = [(organ, dataset if organ == cell.organ else Dataset.open(ds_dir))
               for organ, ds_dir in task.eval_targets()]
    used = cases_used(cell, dataset, targets, task.setting("cross_organ_cases"))
    config = stages.make_config(cell.backbone, cell.preset, cell.seed, cell.hp(), spacing=dataset.spacing)
    write_json_atomic(out / "cell.json", cell.to_dict())
    write_json_atomic(out / "train_config.json", _as_dict(config))
    write_json_atomic(out / "cases_used.json", used)
    stages.train(config, dataset.items(used["train"]), dataset.items(used["val"]), out / "train",
                 generator=_generator(task, stages), device=task.device, report=report,
                 log_metrics=log_metrics, progress=progress, cache_dir=Path(task.results_root) / ".cache")
    if train_only:
        return {}
    ckpt = _checkpoint(out / "train")
    summaries = {organ: _predict_and_evaluate(task, stages, ckpt, target, used["test"][organ], organ, progress)
                 for organ, target in targets}
    stages.previews(dataset, used["test"][cell.organ], out / "predictions" / cell.organ, out / "previews",
                    int(task.setting("previews")))
    return summaries


def cases_used(cell, dataset, targets, cross_cases: str = "val") -> dict:
    """The case ids a cell trains on, selects its checkpoint on and is tested on.

    Returns:
        ``{"fold", "roles", "train": [...], "val": [...], "test": {organ: [...]}}``; ``val`` is
        the inner validation split (never the test fold), ``test`` the reported cases per
        evaluated organ (own organ: test fold ``cell.fold``).
    """
    from benchmark.data.splits import fold_cases

    fit, inner, test = fold_cases(dataset, cell.fold)
    roles = cell.training_roles()
    train = [c for c in fit if dataset.cases.loc[c, "role"] in roles]
    if not train:
        raise InputError(f"{dataset.root}: fold {cell.fold} has no training case of role {'/'.join(roles)} "
                         f"for the {cell.regime} regime")
    tests = {organ: test if organ == cell.organ else _cross_ids(target, cell.fold, cross_cases)
             for organ, target in targets}
    return {"fold": cell.fold, "roles": list(roles), "train": train, "val": inner, "test": tests}


def _predict_and_evaluate(task, stages: Stages, ckpt: Path, dataset, case_ids, organ: str,
                          progress: bool) -> dict:
    """Predict (skipped when a previous attempt completed it) and write the summary.

    Post-processing keeps tumor calls inside the *target* CT's organ label (the paper's
    pseudo-label), whichever organ the model was trained on."""
    from benchmark.io import write_json_atomic, write_text_atomic

    out = Path(task.results_dir)
    pred_dir = out / "predictions" / organ
    marker = pred_dir / ".complete"
    if not marker.is_file():
        stages.predict(ckpt, dataset.items(case_ids), pred_dir, device=task.device,
                       overlap=float(task.setting("overlap")),
                       organ_postprocess=bool(task.setting("organ_postprocess")),
                       organ_masks={c: str(dataset.labels_path(c)) for c in case_ids}, progress=progress)
        write_text_atomic(marker, "\n".join(case_ids) + "\n")
    path = out / "summary.json" if organ == task.cell.organ else out / "cross_organ" / organ / "summary.json"
    summary = stages.evaluate(pred_dir, dataset, case_ids=list(case_ids), out=path, progress=progress)
    if not path.is_file():  # evaluate_folder writes it; make sure whatever evaluated did
        write_json_atomic(path, summary)
    return summary


def _generator(task, stages: Stages):
    """The cell's generator, made for its synth_source organ (Table 3: the source organ's)."""
    config = task.cell.generator_config()
    if not config:
        return None
    kwargs = {k: v for k, v in config.items() if k != "name"}
    if "checkpoint" in kwargs:
        kwargs["checkpoint"] = task.generator_checkpoint or kwargs["checkpoint"]
    return stages.make_generator(config["name"], task.cell.synth_source, device=task.device, **kwargs)


def _checkpoint(train_dir: Path) -> Path:
    for name in ("best.pt", "last.pt"):
        if (train_dir / name).is_file():
            return train_dir / name
    raise InputError(f"{train_dir}: training left no best.pt/last.pt checkpoint")


def _cross_ids(dataset, fold: int, which: str) -> list[str]:
    """Cases of another organ's dataset used for cross-organ evaluation (its test fold k)."""
    if which == "all":
        return dataset.case_ids()
    if which == "val":
        return dataset.fold(fold)[1]
    raise InputError(f"grid [evaluate]: field 'cross_organ_cases' is {which!r}; expected val|all")


def _as_dict(config) -> dict:
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(vars(config))
