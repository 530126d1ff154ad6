"""Learning-rate schedule: linear warmup then cosine decay to 0, stepped once per epoch
(as MONAI-research ``LinearWarmupCosineAnnealingLR`` used by the official trainers).

MONAI's ``WarmupCosineSchedule`` computes it; tests/test_schedule.py checks it against the
closed form below epoch by epoch, so replacing the former hand-written LambdaLR changed no lr."""
from __future__ import annotations

import torch


def make_scheduler(optimizer: torch.optim.Optimizer, warmup_epochs: int, total_epochs: int):
    """Epoch ``e`` (0-based) gets ``start + (1 - start) * e / warmup_epochs`` during warmup, then
    ``0.5 * (1 + cos(pi * t))`` with t from 0 to 1 over the remaining epochs."""
    from monai.optimizers import WarmupCosineSchedule

    # Warmup starts at a small positive factor so the first epoch is not wasted at lr 0.
    start = 1.0 / (warmup_epochs + 1) if warmup_epochs else 1.0
    return WarmupCosineSchedule(optimizer, warmup_steps=warmup_epochs, t_total=max(total_epochs, 1),
                                warmup_multiplier=start)
