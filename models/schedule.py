"""Learning-rate schedule: linear warmup then cosine decay to 0, stepped once per epoch
(as MONAI-research ``LinearWarmupCosineAnnealingLR`` used by the official trainers)."""
from __future__ import annotations

import math

import torch


def lr_factor(epoch: int, warmup_epochs: int, total_epochs: int, warmup_start: float = 0.0) -> float:
    """Multiplier of the base lr during ``epoch`` (0-based).

    Warmup goes linearly from ``warmup_start`` (epoch 0) to 1 (epoch ``warmup_epochs``); then
    ``0.5 * (1 + cos(pi * t))`` with t from 0 to 1 over the remaining epochs.
    """
    if warmup_epochs > 0 and epoch < warmup_epochs:
        return warmup_start + (1.0 - warmup_start) * epoch / warmup_epochs
    span = max(total_epochs - warmup_epochs, 1)
    t = min(max(epoch - warmup_epochs, 0) / span, 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * t))


def make_scheduler(optimizer: torch.optim.Optimizer, warmup_epochs: int, total_epochs: int):
    """LambdaLR over :func:`lr_factor` (its state dict holds plain numbers only)."""
    # Warmup starts at a small positive factor so the first epoch is not wasted at lr 0.
    start = 1.0 / (warmup_epochs + 1) if warmup_epochs else 1.0
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda epoch: lr_factor(epoch, warmup_epochs, total_epochs, start)
    )
