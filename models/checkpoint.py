"""Checkpoints: plain state dicts (tensors and Python scalars only) so that
``torch.load(path, weights_only=True)`` works; written atomically (temp + rename)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from models.config import TrainConfig
from tumorbench_common.io import atomic_write, load_file, write_text_atomic

FORMAT_VERSION = 1


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The underlying module of a ``torch.compile`` wrapper (state-dict keys without ``_orig_mod``)."""
    return getattr(model, "_orig_mod", model)


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """``torch.save`` ``state`` atomically."""
    path = Path(path)
    atomic_write(path, lambda tmp: torch.save(state, tmp))
    return path


def save_config_json(path: str | os.PathLike, config: TrainConfig) -> Path:
    path = Path(path)
    write_text_atomic(path, json.dumps(config.to_dict(), indent=2) + "\n")
    return path


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict[str, Any]:
    """Load a checkpoint written by the trainer (``weights_only=True``); clear error otherwise."""
    state = load_file(path, "checkpoint", lambda p: torch.load(p, map_location=map_location, weights_only=True),
                      ValueError)
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise ValueError(f"checkpoint {path} lacks 'model'/'config' entries (not a TumorBench checkpoint)")
    return state


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """Torch RNG states (CPU, and the CUDA device when used)."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
