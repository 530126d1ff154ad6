"""Pieces shared by the two training loops: per-step randomness, resume state, lr, autocast.

Every step draws its crops and noise from generators seeded by (seed, step), so a run that is
killed and resumed from its last saved state reproduces the uninterrupted run exactly (on CPU).
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from synthesis.difftumor.checkpoint import file_sha256, load_torch, save_torch  # noqa: F401 (re-exported)
from synthesis.errors import SynthesisInputError

LogMetrics = Callable[[dict[str, float], int], None]


def step_generators(seed: int, step: int) -> tuple[np.random.Generator, torch.Generator]:
    """(numpy, CPU torch) generators for one training step, independent of earlier steps."""
    rng = np.random.default_rng([seed, step])
    return rng, torch.Generator().manual_seed(int(rng.integers(2 ** 62)))


@contextlib.contextmanager
def seeded_init(seed: int):
    """Seed the CPU RNG for module construction (weight init) and restore the caller's state
    afterwards, so two runs with one config start from the same weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA when ``enabled``; a no-op on CPU (AMP is CUDA-only here)."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def multistep_lr(base_lr: float, step: int, total: int, milestones: tuple[float, ...]) -> float:
    """MultiStepLR with milestones given as fractions of ``total`` steps, gamma 0.1."""
    return base_lr * 0.1 ** sum(step >= int(m * total) for m in milestones)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def load_resume_state(path: Path, config: dict[str, Any], device: torch.device) -> dict[str, Any] | None:
    """The saved training state at ``path`` (None if absent). A state made with another config
    raises, since continuing it would silently mix two trainings."""
    if not path.is_file():
        return None
    state = load_torch(path, "DiffTumor training state", device)
    if state.get("config") != config:
        raise SynthesisInputError(
            f"{path}: training state was saved with a different configuration; use the same preset/steps "
            "or delete this file to start over")
    return state


def save_resume_state(path: Path, step: int, config: dict[str, Any], modules: dict[str, Any]) -> None:
    """Save ``{name: module_or_optimizer.state_dict()}`` plus the next step and the config."""
    state = {name: obj.state_dict() for name, obj in modules.items()}
    state.update(step=step, config=config)
    save_torch(path, state)


def restore(modules: dict[str, Any], state: dict[str, Any]) -> int:
    """Load the saved state dicts into ``modules``; returns the step to continue from."""
    for name, obj in modules.items():
        obj.load_state_dict(state[name])
    return int(state["step"])


def progress_bar(total: int, initial: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, dynamic_ncols=True)


def finish_step(step: int, total: int, metrics: dict[str, float], *, log_metrics, log_every: int,
                checkpoint_every: int, state_path: Path, config: dict[str, Any], modules: dict[str, Any]) -> None:
    """After optimiser step ``step``: log metrics every ``log_every`` steps and save the resume
    state every ``checkpoint_every`` steps (both also on the last step)."""
    last = step + 1 == total
    if log_metrics and (step % log_every == 0 or last):
        log_metrics(metrics, step)
    if (step + 1) % checkpoint_every == 0 or last:
        save_resume_state(state_path, step + 1, config, modules)
