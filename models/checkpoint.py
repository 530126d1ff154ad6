"""Checkpoints: plain state dicts (tensors and Python scalars only) so that
``torch.load(path, weights_only=True)`` works; written atomically (temp + fsync + rename).

``last.pt`` keeps its predecessor: each save moves the previous one to ``last.prev.pt`` (after the
new file is on disk), and `load_latest` falls back to it, with a warning, when ``last.pt`` is
missing or unreadable (a node crash, a truncated copy), instead of failing every retry; the broken
file is kept as ``last.corrupt.pt``."""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from models.config import TrainConfig
from tumorbench_common.io import atomic_path, atomic_write, copy_atomic, fsync_path, load_file, write_text_atomic

FORMAT_VERSION = 1


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The underlying module of a ``torch.compile`` wrapper (state-dict keys without ``_orig_mod``)."""
    return getattr(model, "_orig_mod", model)


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any], keep_previous: bool = False) -> Path:
    """``torch.save`` ``state`` atomically; ``keep_previous``: the file it replaces becomes
    `previous_checkpoint` (moved only once the new one is fsynced)."""
    path = Path(path)
    if not keep_previous:
        atomic_write(path, lambda tmp: torch.save(state, tmp))
        return path
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
        fsync_path(tmp)
        if path.exists():
            os.replace(path, previous_checkpoint(path))
    return path


def previous_checkpoint(path: str | os.PathLike) -> Path:
    """``last.pt`` -> ``last.prev.pt``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def load_latest(path: str | os.PathLike, map_location="cpu") -> tuple[dict[str, Any], Path] | None:
    """(state, file) of ``path`` or, when it is missing or unreadable, of its predecessor (with a
    warning naming both; an unreadable ``path`` is moved to ``<stem>.corrupt.pt`` so that the next
    save rotates the good predecessor, not the broken file); None when neither exists. Raises
    ValueError when neither loads."""
    path = Path(path)
    errors = []
    for candidate in (path, previous_checkpoint(path)):
        if not candidate.exists():
            continue
        try:
            state = load_checkpoint(candidate, map_location=map_location)
        except ValueError as exc:
            errors.append(str(exc))
            continue
        if candidate != path:
            why = errors[0] if errors else f"{path}: not found"
            if path.exists():  # kept for a look, and out of the way: the next save must keep `candidate`
                os.replace(path, path.with_name(f"{path.stem}.corrupt{path.suffix}"))
            warnings.warn(f"{why}; resuming from its predecessor {candidate} (epoch {state.get('epoch')})",
                          RuntimeWarning, stacklevel=2)
        return state, candidate
    if errors:
        raise ValueError("; ".join(errors) + "; delete them to start over")
    return None


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


def _epoch_in(path: Path) -> int | None:
    try:
        return int(load_checkpoint(path)["epoch"]) if path.exists() else None
    except (ValueError, KeyError, TypeError):
        return None


def restore_best(best_path: str | os.PathLike, last_path: str | os.PathLike, epoch: int) -> None:
    """Make ``best.pt`` the checkpoint of ``epoch`` (the best epoch ``last.pt`` records) when it is
    not: a crash between writing ``last.pt`` and ``best.pt`` leaves it behind, and the state of
    that epoch is still ``last.pt`` (or its predecessor). Copied (fsynced) and said with a warning."""
    best_path, last_path = Path(best_path), Path(last_path)
    if _epoch_in(best_path) == epoch:
        return
    for source in (last_path, previous_checkpoint(last_path)):
        if _epoch_in(source) == epoch:
            copy_atomic(source, best_path)
            warnings.warn(f"{best_path} was not epoch {epoch}'s (a crash before it was written); "
                          f"restored from {source}", RuntimeWarning, stacklevel=2)
            return
