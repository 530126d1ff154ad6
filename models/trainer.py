"""One trainer for every regime (real / hu / difftumor): the only difference is whether a
:class:`~synthesis.protocol.TumorGenerator` is passed and which items are given.

- real: items with real tumors, ``generator=None``;
- hu / difftumor: labeled + healthy items and a generator; each healthy crop gets a synthetic
  tumor with probability ``synth_prob`` (see :mod:`models.data`).

Determinism: one cell seed; child seeds (SeedSequence spawn keys) for data order/crops
(per epoch and batch), synthesis (per epoch and batch) and weight init. Each epoch's randomness
depends only on (seed, epoch), so resuming from ``last.pt`` at epoch k replays exactly what an
uninterrupted run does. The torch RNG is forked (never the caller's global state) and saved.
"""
from __future__ import annotations

import math
from itertools import islice
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from models.checkpoint import (load_latest, restore_best, rng_state, save_checkpoint, save_config_json,
                               set_rng_state, unwrap)
from models.config import STREAM_INIT, TrainConfig, torch_seed
from models.data import run_batches
from models.inference import autocast, build_model, predict_volume
from models.overlap import dice
from models.schedule import make_scheduler
from models.cache import cached_volumes
from models.volumes import Volume, load_volumes
from tumorbench_common.io import copy_atomic
from synthesis.protocol import TumorGenerator

# Fields that do not change what is computed, so a resume may differ in them.
_RESUME_FREE_FIELDS = ("num_workers",)


@dataclass(frozen=True)
class TrainResult:
    """Paths of the checkpoints, per-epoch history and where the run resumed (0 = fresh)."""

    best_ckpt: Path
    last_ckpt: Path
    history: list[dict[str, Any]]
    resumed_from_epoch: int


@dataclass
class _Run:
    """Mutable training state (what ``last.pt`` holds)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None


def iterations_per_epoch(config: TrainConfig, n_items: int) -> int:
    """``iters_per_epoch`` or one pass over the items (one random crop per scan)."""
    return config.iters_per_epoch or max(1, math.ceil(n_items / config.batch_size))


def segmentation_loss(logits: torch.Tensor, label: torch.Tensor, loss_fn) -> torch.Tensor:
    """DiceCE on (B, 3, X, Y, Z) logits; deep-supervision outputs (B, H, 3, X, Y, Z) are
    weighted 1, 1/2, 1/4, ... (normalised) as nnU-Net."""
    if logits.ndim == 5:
        return loss_fn(logits, label)
    heads = logits.unbind(1)
    weights = [0.5**i for i in range(len(heads))]
    return sum(w * loss_fn(h, label) for w, h in zip(weights, heads)) / sum(weights)


def make_loss():
    """DiceCE as the official trainers (squared_pred, smooth_nr=0, smooth_dr=1e-6)."""
    from monai.losses import DiceCELoss

    return DiceCELoss(to_onehot_y=True, softmax=True, squared_pred=True, smooth_nr=0.0, smooth_dr=1e-6)


def _new_run(config: TrainConfig, device: torch.device) -> _Run:
    # Weight init draws from the (forked) global torch RNG: seed it from the init stream.
    torch.manual_seed(torch_seed(config.seed, STREAM_INIT))
    model = build_model(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    return _Run(model, optimizer, make_scheduler(optimizer, config.warmup_epochs, config.epochs))


def _state(run: _Run, config: TrainConfig, device: torch.device) -> dict[str, Any]:
    return {
        "format": 1, "epoch": run.epoch, "config": config.to_dict(),
        "model": unwrap(run.model).state_dict(), "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(), "rng": rng_state(device),
        "history": run.history, "best": run.best,
    }


def _check_resumable(state: dict, config: TrainConfig, path: Path) -> None:
    saved = {k: v for k, v in state["config"].items() if k not in _RESUME_FREE_FIELDS}
    wanted = {k: v for k, v in config.to_dict().items() if k not in _RESUME_FREE_FIELDS}
    diff = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
    if diff:
        raise ValueError(f"{path} was written with a different TrainConfig (fields {diff}); "
                         "use another out_dir or delete it to start over")


def _resume(run: _Run, out_dir: Path, config: TrainConfig, device: torch.device) -> None:
    """Continue from ``last.pt`` (or its predecessor when it is unreadable); repair ``best.pt``."""
    latest = load_latest(out_dir / "last.pt", map_location=device)
    if latest is None:
        return
    state, path = latest
    _check_resumable(state, config, path)
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"], device)
    run.epoch, run.history, run.best = int(state["epoch"]), list(state["history"]), state["best"]
    if run.best is not None:
        restore_best(out_dir / "best.pt", out_dir / "last.pt", int(run.best["epoch"]))


def train_step(step_model, optimizer, loss_fn, batch: dict, device: torch.device, amp: bool) -> float:
    """One optimisation step on a batch from :mod:`models.data`; returns the loss."""
    image = batch["image"].to(device, non_blocking=True)
    label = batch["label"].to(device, non_blocking=True)
    with autocast(device, amp):
        loss = segmentation_loss(step_model(image), label, loss_fn)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def _train_epoch(run: _Run, step_model, loss_fn, batches, config: TrainConfig, device, progress) -> float:
    from tqdm.auto import tqdm

    run.model.train()
    losses = []
    bar = tqdm(batches, desc=f"epoch {run.epoch + 1}/{config.epochs}", disable=not progress, leave=False)
    for batch in bar:
        losses.append(train_step(step_model, run.optimizer, loss_fn, batch, device, config.amp))
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    return float(np.mean(losses))


def validate(model: torch.nn.Module, volumes: Sequence[Volume], config: TrainConfig, device) -> tuple[float, float]:
    """Sliding-window validation: (tumor DSC, organ DSC).

    Organ DSC uses label >= 1 (organ incl. tumor), averaged over all cases. Tumor DSC is averaged
    over cases with a real tumor; if there are none, over all cases (empty vs empty = 1).
    """
    tumor, organ, has_tumor = [], [], []
    for vol in volumes:
        pred = predict_volume(model, vol.dense_ct(), config, device, config.val_overlap)
        label = vol.dense_label()
        organ.append(dice(pred >= 1, label >= 1))
        tumor.append(dice(pred == 2, label == 2))
        has_tumor.append(bool((label == 2).any()))
    with_tumor = [t for t, h in zip(tumor, has_tumor) if h]
    return float(np.mean(with_tumor or tumor)), float(np.mean(organ))


def _check_inputs(config: TrainConfig, train_items, val_items, generator) -> None:
    if not train_items:
        raise ValueError("train_items is empty: expected at least one {case_id, image, label, healthy} dict")
    if generator is not None and not isinstance(generator, TumorGenerator):
        raise ValueError(f"generator {generator!r} does not implement synthesis.protocol.TumorGenerator")
    if config.compile and not hasattr(torch, "compile"):
        raise ValueError("TrainConfig.compile=True needs torch.compile (torch >= 2.0)")


def _after_epoch(run: _Run, config: TrainConfig, loss: float, val_volumes, device, out_dir: Path,
                 log_metrics, before_write) -> dict:
    """Validate when due, log the epoch's metrics, save last.pt, then best.pt when it improved.

    Metrics are logged BEFORE last.pt: a process killed in between has logged epoch k without a
    checkpoint for it, so the resumed run replays epoch k (deterministically, same values) and the
    logger drops the repeated step (`benchmark.tracking.MetricBuffer`). In the other order a kill
    between the two would leave a checkpoint whose epoch is never logged. best.pt comes last, as a
    copy of last.pt: a crash before it leaves last.pt holding that epoch, and the resumed run
    restores best.pt from it (`models.checkpoint.restore_best`). ``before_write()`` (the runner's
    lease check) runs before each of the three writes and raises to stop a process that lost its cell.
    """
    metrics: dict[str, Any] = {"epoch": run.epoch + 1, "train_loss": loss,
                               "lr": float(run.optimizer.param_groups[0]["lr"])}
    run.scheduler.step()
    run.epoch += 1
    improved = False
    # no validation cases: the final checkpoint is the one evaluated (nnU-Net's default), no best.pt
    if val_volumes and (run.epoch % config.val_every == 0 or run.epoch == config.epochs):
        tumor_dsc, organ_dsc = validate(unwrap(run.model), val_volumes, config, device)
        metrics.update(val_tumor_dsc=tumor_dsc, val_organ_dsc=organ_dsc)
        best = run.best
        improved = best is None or (tumor_dsc, organ_dsc) > (best["val_tumor_dsc"], best["val_organ_dsc"])
        if improved:
            run.best = {"epoch": run.epoch, "val_tumor_dsc": tumor_dsc, "val_organ_dsc": organ_dsc}
    run.history.append(metrics)
    if log_metrics is not None:
        before_write()
        log_metrics({k: v for k, v in metrics.items() if k != "epoch"}, metrics["epoch"])
    # last.pt is written before `report`: an Optuna prune (or a crash) raised from it leaves a
    # checkpoint that resumes at the next epoch.
    before_write()
    save_checkpoint(out_dir / "last.pt", _state(run, config, device), keep_previous=True)
    if improved:
        before_write()
        copy_atomic(out_dir / "last.pt", out_dir / "best.pt")
    return metrics


def _report(metrics: dict, report) -> None:
    if report is not None and "val_tumor_dsc" in metrics:
        report(metrics["epoch"], metrics["val_tumor_dsc"])


def _volumes(config: TrainConfig, train_items, val_items, cache_dir, progress: bool):
    if cache_dir is None:
        return (load_volumes(train_items, config.crop_size, progress, "caching train volumes"),
                load_volumes(val_items, (1, 1, 1), progress, "caching val volumes"))
    return (cached_volumes(train_items, cache_dir, config.spacing, config.crop_size, progress),
            cached_volumes(val_items, cache_dir, config.spacing, (1, 1, 1), progress))


def _no_check() -> None:
    pass


def _fork_devices(device: torch.device) -> list:
    return [device] if device.type == "cuda" else []


def train(
    config: TrainConfig,
    train_items: Sequence[dict],
    val_items: Sequence[dict],
    out_dir,
    *,
    generator: TumorGenerator | None = None,
    device="cpu",
    report: Callable[[int, float], None] | None = None,
    log_metrics: Callable[[dict, int], None] | None = None,
    progress: bool = True,
    cache_dir=None,
    before_write: Callable[[], None] | None = None,
) -> TrainResult:
    """Train ``config`` on ``train_items``, validating on ``val_items``; resume from last.pt.

    Args:
        train_items / val_items: dicts ``{case_id, image, label, healthy, age, sex}`` (NIfTI paths).
        out_dir: gets ``config.json``, ``last.pt`` (every epoch; its predecessor kept as
            ``last.prev.pt``) and ``best.pt`` (best val tumor DSC, ties by organ DSC; none when
            ``val_items`` is empty: the final checkpoint is then the one to evaluate); an existing
            ``last.pt`` with the same config is resumed (its predecessor if it is unreadable).
        generator: synthetic-tumor generator for healthy crops (None: no synthesis).
        device: torch device; AMP/compile only take effect on CUDA.
        report: ``report(epoch, val_tumor_dsc)`` at each validation (may raise to prune).
        log_metrics: ``log_metrics(metrics, epoch)`` every epoch (``train_loss``, ``lr``, and
            ``val_tumor_dsc``/``val_organ_dsc`` at validations). Epochs are 1-based. Called
            before ``last.pt`` of the epoch is written (see ``_after_epoch``).
        cache_dir: preprocessed int16 case cache (:mod:`models.cache`), memory-mapped by this
            process and its workers; None: every case is held in RAM as float32 (small data).
        before_write: called before each metrics log and checkpoint write; raises to stop a
            process that may no longer write here (the runner's cell lease, `benchmark.lease`).

    Returns:
        :class:`TrainResult`.
    """
    device = torch.device(device)
    out_dir = Path(out_dir)
    _check_inputs(config, train_items, val_items, generator)
    volumes, val_volumes = _volumes(config, train_items, val_items, cache_dir, progress)
    n_batches = iterations_per_epoch(config, len(volumes))
    loss_fn = make_loss()
    with torch.random.fork_rng(devices=_fork_devices(device)):
        run = _new_run(config, device)
        _resume(run, out_dir, config, device)
        resumed_from = run.epoch
        save_config_json(out_dir / "config.json", config)
        step_model = torch.compile(run.model) if config.compile and device.type == "cuda" else run.model
        # one loader (and one set of workers) for all remaining epochs
        stream = run_batches(volumes, config, run.epoch, config.epochs, n_batches, generator)
        try:
            while run.epoch < config.epochs:
                loss = _train_epoch(run, step_model, loss_fn, islice(stream, n_batches), config, device, progress)
                _report(_after_epoch(run, config, loss, val_volumes, device, out_dir, log_metrics,
                                     before_write or _no_check), report)
        finally:
            stream.close()
    return TrainResult(out_dir / "best.pt", out_dir / "last.pt", list(run.history), resumed_from)
