"""Training configuration (one frozen dataclass per cell) and seed derivation."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

# Child-seed streams derived from the one cell seed (numpy SeedSequence spawn keys).
STREAM_DATA, STREAM_SYNTHESIS, STREAM_INIT = 0, 1, 2


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (saved as ``config.json`` and in checkpoints).

    Defaults follow DiffTumor STEP3 where CPU-feasible (batch 2 as the Hu et al. README):
    HU window [-175, 250] -> [0, 1], DiceCE, AdamW, linear warmup + cosine (stepped per epoch),
    RandRotate90 p=0.1, RandShiftIntensity 0.1 p=0.2, no mirroring.

    Attributes:
        backbone: ``unet | nnunet | swin_unetr``; size: ``tiny | paper``.
        crop_size: training patch and sliding-window ROI (X, Y, Z) voxels.
        spacing: data voxel spacing (mm), used by the nnU-Net plan and synthesis.
        epochs: number of epochs; iters_per_epoch: batches per epoch (None: one pass over items).
        val_every: validate every this many epochs (and always after the last one).
        warmup_epochs: linear warmup length before the cosine decay to 0.
        synth_prob: probability that a healthy crop gets a synthetic tumor (needs a generator).
        pos_fraction: probability that a crop is centred on a label > 0 voxel (pos=1, neg=1 -> 0.5).
        synth_min_organ_fraction: a crop chosen for synthesis is re-drawn (up to 10 tries, keep the
            best) until this fraction of its voxels is organ, as the official select-crop.
        rot90_prob / shift_prob / shift_offset: intensity/spatial augmentation (MONAI semantics).
        val_overlap: sliding-window overlap during validation (0.5 as the official trainer).
        amp / compile: bf16 autocast / torch.compile, CUDA only (ignored on CPU).
        deep_supervision: nnunet only; extra heads weighted 1, 1/2, 1/4... in the loss.
    """

    backbone: str = "unet"
    size: str = "tiny"
    crop_size: tuple[int, int, int] = (96, 96, 96)
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    batch_size: int = 2
    lr: float = 2e-4
    weight_decay: float = 1e-5
    epochs: int = 100
    iters_per_epoch: int | None = None
    val_every: int = 10
    warmup_epochs: int = 5
    synth_prob: float = 0.5
    pos_fraction: float = 0.5
    synth_min_organ_fraction: float = 0.05
    rot90_prob: float = 0.1
    shift_prob: float = 0.2
    shift_offset: float = 0.1
    window: tuple[float, float] = (-175.0, 250.0)
    val_overlap: float = 0.5
    seed: int = 0
    num_workers: int = 0
    amp: bool = False
    compile: bool = False
    deep_supervision: bool = False

    def __post_init__(self) -> None:
        _check_config(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/torch-safe dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error (naming them)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s) {unknown}; expected a subset of {sorted(names)}")
        tuple_fields = {"crop_size", "spacing", "window"}
        return cls(**{k: tuple(v) if k in tuple_fields else v for k, v in data.items()})


def _check_config(cfg: TrainConfig) -> None:
    def fail(field: str, expected: str) -> None:
        raise ValueError(f"TrainConfig.{field}={getattr(cfg, field)!r}: expected {expected}")

    if len(cfg.crop_size) != 3 or any(int(c) <= 0 for c in cfg.crop_size):
        fail("crop_size", "3 positive ints")
    if len(cfg.spacing) != 3 or any(float(s) <= 0 for s in cfg.spacing):
        fail("spacing", "3 positive floats (mm)")
    for field in ("batch_size", "epochs", "val_every"):
        if int(getattr(cfg, field)) < 1:
            fail(field, "an int >= 1")
    if cfg.iters_per_epoch is not None and cfg.iters_per_epoch < 1:
        fail("iters_per_epoch", "None or an int >= 1")
    if cfg.warmup_epochs < 0 or cfg.num_workers < 0:
        fail("warmup_epochs" if cfg.warmup_epochs < 0 else "num_workers", "an int >= 0")
    for field in ("synth_prob", "pos_fraction", "synth_min_organ_fraction", "rot90_prob", "shift_prob"):
        if not 0.0 <= float(getattr(cfg, field)) <= 1.0:
            fail(field, "a probability in [0, 1]")
    if not 0.0 <= cfg.val_overlap < 1.0:
        fail("val_overlap", "a float in [0, 1)")
    if len(cfg.window) != 2 or cfg.window[0] >= cfg.window[1]:
        fail("window", "(low, high) HU with low < high")
    if cfg.lr <= 0 or cfg.weight_decay < 0:
        fail("lr" if cfg.lr <= 0 else "weight_decay", "lr > 0 and weight_decay >= 0")


def child_seed(seed: int, *path: int) -> np.random.SeedSequence:
    """SeedSequence for ``path`` below the cell seed, e.g. ``(STREAM_DATA, epoch, batch)``.

    Equal to what ``SeedSequence(seed).spawn`` would give along that path, but stateless, so
    batch ``b`` of epoch ``k`` gets the same randomness whether or not the run was resumed.
    """
    return np.random.SeedSequence(int(seed), spawn_key=tuple(int(p) for p in path))


def child_rng(seed: int, *path: int) -> np.random.Generator:
    """numpy Generator on :func:`child_seed`."""
    return np.random.default_rng(child_seed(seed, *path))


def torch_seed(seed: int, *path: int) -> int:
    """A 63-bit int for seeding a torch RNG from :func:`child_seed`."""
    return int(child_seed(seed, *path).generate_state(2, np.uint64)[0] >> np.uint64(1))
