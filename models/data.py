"""Training data: volumes (in RAM or memory-mapped), pos/neg crops, on-the-fly synthesis,
window, augmentation; one DataLoader for a whole training run.

One pipeline for every regime. Per batch (all randomness from child seeds of the cell seed,
keyed by epoch and batch index, so a resumed run replays the same batches):

1. crop (HU): centre on a label > 0 voxel with ``pos_fraction`` (RandCropByPosNegLabeld with
   ``image_threshold`` = window low, so negatives sit in the body), else on a background voxel;
   healthy crops chosen for synthesis are always organ-centred with enough organ;
2. rotate 90 degrees on axes (0, 1), k drawn as MONAI RandRotate90 (k = 2 only when those axes
   differ in length) and applied with MONAI ``Rotate90``;
3. synthesis: the crops of healthy cases drawn with ``synth_prob`` go, as one batch, through the
   :class:`~synthesis.protocol.TumorGenerator` (in HU, before windowing); label := 2 on its mask;
4. window [lo, hi] HU -> [0, 1] (clipped); intensity shift, offset ~ U(-0.1, 0.1) as MONAI
   RandShiftIntensity, applied with MONAI ``ShiftIntensity``.

Parameters are drawn with the batch's ``np.random.Generator`` and applied with MONAI's
deterministic transforms (torchio/MONAI style); the result equals ``np.rot90`` / ``x + offset``
bit for bit (tests/test_trainer.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
from monai.transforms import Rotate90, ShiftIntensity
from monai.utils import convert_to_numpy

from models.config import STREAM_DATA, STREAM_SYNTHESIS, TrainConfig, child_rng
from models.volumes import Volume
from synthesis.protocol import local_tumors

_MAX_SELECT_TRIES = 10


@dataclass
class CropPlan:
    """Stage-1 output for one batch (numpy, HU). ``synth``: which crops get a tumor."""

    ct_hu: np.ndarray  # (B, X, Y, Z) float32
    label: np.ndarray  # (B, X, Y, Z) uint8
    synth: np.ndarray  # (B,) bool
    shift: np.ndarray  # (B,) float32 intensity offset after windowing (0 = no shift)
    case_ids: tuple[str, ...]


def epoch_order(n_items: int, n_samples: int, seed: int, epoch: int) -> np.ndarray:
    """Item index per sample of an epoch: concatenated random permutations (each item once
    per pass, as one random crop per scan per epoch in the official trainer)."""
    rng = child_rng(seed, STREAM_DATA, epoch)
    passes = -(-n_samples // n_items)
    return np.concatenate([rng.permutation(n_items) for _ in range(passes)])[:n_samples]


def _start(center: Sequence[int], shape: Sequence[int], crop: Sequence[int]) -> tuple[int, ...]:
    return tuple(int(min(max(c - k // 2, 0), s - k)) for c, s, k in zip(center, shape, crop))


# Hand-written, not MONAI RandCropByPosNegLabeld: its index lists cost 169 MB and 1.8 s per 1 mm case
# (ours: 0.6 MB, written once in the cache), see docs/contracts.md and `tumorbench perf crops`.
def _background_center(vol: Volume, low_hu: float, rng: np.random.Generator) -> tuple[int, ...]:
    """Random label-0 voxel inside the body (HU > ``low_hu``), by rejection sampling
    (no index list: a 1 mm abdomen has ~10^8 background voxels)."""
    for _ in range(200):
        idx = tuple(int(rng.integers(0, s)) for s in vol.shape)
        label, hu = vol.voxel(idx)
        if label == 0 and hu > low_hu:
            return idx
    return idx


def _foreground_center(vol: Volume, rng: np.random.Generator) -> tuple[int, ...]:
    center = vol.foreground(rng)
    return center if center is not None else tuple(int(rng.integers(0, s)) for s in vol.shape)


def _select_start(vol: Volume, cfg: TrainConfig, synth: bool, rng: np.random.Generator) -> tuple[int, ...]:
    crop = cfg.crop_size
    if not synth:
        positive = rng.random() < cfg.pos_fraction
        center = _foreground_center(vol, rng) if positive else _background_center(vol, cfg.window[0], rng)
        return _start(center, vol.shape, crop)
    # As RandCropByPosNegLabeld_select: a healthy crop that gets a tumor needs enough organ.
    need = cfg.synth_min_organ_fraction * float(np.prod(crop))
    best, best_count = None, -1
    for _ in range(_MAX_SELECT_TRIES):
        start = _start(_foreground_center(vol, rng), vol.shape, crop)
        count = int(np.count_nonzero(vol.label_crop(start, crop) == 1))
        if count > best_count:
            best, best_count = start, count
        if count >= need:
            break
    return best


def _rot90_k(cfg: TrainConfig, rng: np.random.Generator) -> int:
    if rng.random() >= cfg.rot90_prob:
        return 0
    k = int(rng.integers(1, 4))  # MONAI RandRotate90 max_k=3
    # k = 1, 3 would swap unequal axes and break batching: use the half turn instead.
    return k if cfg.crop_size[0] == cfg.crop_size[1] else 2


def _apply(transform, crop: np.ndarray) -> np.ndarray:
    """A deterministic MONAI array transform on one (X, Y, Z) crop (channel first inside)."""
    return convert_to_numpy(transform(crop[None]))[0]


def _rotate(crop: np.ndarray, k: int) -> np.ndarray:
    """Rotate90 on axes (0, 1) with the drawn ``k`` (k = 0: not drawn, crop unchanged)."""
    return _apply(Rotate90(k, spatial_axes=(0, 1)), crop) if k else crop


def plan_batch(
    volumes: Sequence[Volume], indices: Sequence[int], cfg: TrainConfig, can_synthesize: bool,
    rng: np.random.Generator,
) -> CropPlan:
    """Stage 1-2 for one batch: crops in HU, rotated, with synthesis/shift decisions drawn."""
    cts, labels, synth, shift = [], [], [], []
    for i in indices:
        vol = volumes[int(i)]
        wants_tumor = bool(can_synthesize and vol.healthy and rng.random() < cfg.synth_prob)
        start = _select_start(vol, cfg, wants_tumor, rng)
        label = vol.label_crop(start, cfg.crop_size)
        # A case without organ voxels in reach cannot host a tumor: keep it a negative.
        wants_tumor = wants_tumor and bool((label == 1).any())
        k = _rot90_k(cfg, rng)
        cts.append(_rotate(vol.ct_crop(start, cfg.crop_size), k))
        labels.append(_rotate(label, k))
        synth.append(wants_tumor)
        shift.append(rng.uniform(-cfg.shift_offset, cfg.shift_offset) if rng.random() < cfg.shift_prob else 0.0)
    return CropPlan(
        ct_hu=np.ascontiguousarray(np.stack(cts), dtype=np.float32),
        label=np.ascontiguousarray(np.stack(labels), dtype=np.uint8),
        synth=np.asarray(synth, dtype=bool),
        shift=np.asarray(shift, dtype=np.float32),
        case_ids=tuple(volumes[int(i)].case_id for i in indices),
    )


def finish_batch(plan: CropPlan, cfg: TrainConfig, generator, rng: np.random.Generator) -> dict:
    """Stage 3-4: synthesis on the selected crops (one generator call), window, shift.

    Returns:
        ``image`` (B, 1, X, Y, Z) float32 in [0, 1] (+ shift), ``label`` (B, 1, X, Y, Z) int64,
        ``n_synth`` number of synthetic tumors, ``case_ids``.
    """
    ct, label = plan.ct_hu.copy(), plan.label.copy()
    n_synth = int(plan.synth.sum())
    if n_synth:  # each tumor pasted on its boxes (``local_tumors``): no whole-crop copies per tumor
        tumors = local_tumors(generator, ct[plan.synth], label[plan.synth] >= 1, cfg.spacing, rng)
        for i, tumor in zip(np.flatnonzero(plan.synth), tumors):
            tumor.paste(ct[i])
            for piece in tumor.pieces:
                label[i][piece.box][piece.tumor_mask] = 2
    low, high = (float(v) for v in cfg.window)
    # in place on our float32 copy: the same float32 operations as clip((ct - low) / (high - low)),
    # without three batch-size temporaries
    image = np.clip(np.divide(np.subtract(ct, low, out=ct), high - low, out=ct), 0.0, 1.0, out=ct)
    for i in np.flatnonzero(plan.shift):  # shift 0: not drawn for this crop
        image[i] = _apply(ShiftIntensity(float(plan.shift[i])), image[i])
    return {
        "image": torch.from_numpy(image[:, None]),
        "label": torch.from_numpy(label.astype(np.int64)[:, None]),
        "n_synth": n_synth,
        "case_ids": list(plan.case_ids),
    }


class RunBatches(torch.utils.data.Dataset):
    """Batch ``b`` of epoch ``e`` (``first_epoch <= e < last_epoch``) as map-style item
    ``(e - first_epoch) * n_batches + b`` (DataLoader with ``batch_size=None``): one loader, and
    one set of worker processes, serves a whole training run; workers may build batches in any
    order and the result stays deterministic (randomness keyed by epoch and batch)."""

    def __init__(self, volumes, cfg: TrainConfig, first_epoch: int, last_epoch: int, n_batches: int,
                 generator, synth_here: bool):
        self.volumes, self.cfg, self.generator, self.synth_here = volumes, cfg, generator, synth_here
        self.first_epoch, self.last_epoch, self.n_batches = first_epoch, last_epoch, n_batches
        self._orders: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return (self.last_epoch - self.first_epoch) * self.n_batches

    def order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:
            self._orders = {epoch: epoch_order(len(self.volumes), self.n_batches * self.cfg.batch_size,
                                               self.cfg.seed, epoch)}
        return self._orders[epoch]

    def __getitem__(self, index: int):
        cfg = self.cfg
        epoch, b = self.first_epoch + index // self.n_batches, index % self.n_batches
        indices = self.order(epoch)[b * cfg.batch_size : (b + 1) * cfg.batch_size]
        plan = plan_batch(self.volumes, indices, cfg, self.generator is not None,
                          child_rng(cfg.seed, STREAM_DATA, epoch, b))
        if not self.synth_here:
            return epoch, b, plan
        return epoch, b, finish_batch(plan, cfg, self.generator, child_rng(cfg.seed, STREAM_SYNTHESIS, epoch, b))


def _identity(item):
    return item


def ignore_preemption_signal(_worker_id: int = 0) -> None:
    """DataLoader ``worker_init_fn``: a worker ignores Slurm's time-limit / preemption signal.

    Slurm sends it (``--signal=USR2@N``) to every process of the job step, and forked workers
    inherit submitit's handler: each would checkpoint, ``scontrol requeue`` the job and exit, so one
    signal requeued the job up to three times and the trainer died on "DataLoader worker ... is
    killed". Only the main process handles it (checkpoint, one requeue); workers end with it.
    SIGINT is left as it is: a terminal Ctrl-C still reaches the main process as KeyboardInterrupt.
    """
    import os
    import signal

    name = os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2").upper()  # submitit's own override
    for signum in {signal.SIGUSR2, getattr(signal, f"SIG{name.removeprefix('SIG')}", signal.SIGUSR2)}:
        signal.signal(signum, signal.SIG_IGN)


def _worker_context():
    """Fork the workers where the platform can (they then share in-RAM volumes copy-on-write),
    also inside a process that was itself spawned (`tumorbench run --max-parallel`), whose
    default would be to spawn them and pickle every volume into each."""
    import multiprocessing

    return "fork" if "fork" in multiprocessing.get_all_start_methods() else None


def _generator_on_cuda(generator) -> bool:
    return "cuda" in str(getattr(generator, "device", "cpu"))


def run_batches(volumes, cfg: TrainConfig, first_epoch: int, last_epoch: int, n_batches: int,
                generator) -> Iterator[dict]:
    """Yield the finished batches of epochs ``first_epoch .. last_epoch - 1``, in order.

    With ``num_workers > 0`` cropping (and CPU synthesis) runs in DataLoader workers, overlapping
    the training step and validation; the workers live for the whole iteration (not one set per
    epoch). A CUDA generator always runs in this process (no CUDA in forked workers).
    """
    synth_here = cfg.num_workers > 0 and not _generator_on_cuda(generator)
    dataset = RunBatches(volumes, cfg, first_epoch, last_epoch, n_batches, generator,
                         synth_here or cfg.num_workers == 0)
    if cfg.num_workers == 0:
        yield from (dataset[i][2] for i in range(len(dataset)))
        return
    warm_up = getattr(generator, "warm_up", None)  # optional TumorGenerator hook
    if synth_here and callable(warm_up):
        warm_up()  # compiled code loaded before the workers fork is shared by all of them
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, shuffle=False, num_workers=cfg.num_workers,
                                         collate_fn=_identity, multiprocessing_context=_worker_context(),
                                         worker_init_fn=ignore_preemption_signal)
    for epoch, b, item in loader:
        if isinstance(item, CropPlan):
            item = finish_batch(item, cfg, generator, child_rng(cfg.seed, STREAM_SYNTHESIS, epoch, b))
        yield item


def epoch_batches(volumes, cfg: TrainConfig, epoch: int, n_batches: int, generator) -> Iterator[dict]:
    """The batches of one epoch (its own loader; the trainer uses :func:`run_batches`)."""
    return run_batches(volumes, cfg, epoch, epoch + 1, n_batches, generator)

