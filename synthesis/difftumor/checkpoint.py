"""DiffTumor files on disk: exported models and resumable training states.

Checkpoint DIR layout (weights are plain state dicts, configs JSON)::

    autoencoder.pt / autoencoder.json
    diffusion_<organ>_early.pt / .json       (EMA weights of the T=4 model)
    diffusion_<organ>_nonearly.pt / .json    (EMA weights of the T=200 model)
    train_state/<name>.pt                    (resume state: weights, optimisers, step)

All writes go to a temp file renamed into place, so a killed run never leaves half a file.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from synthesis.difftumor.config import (STAGES, AutoencoderConfig, DenoiserConfig, OfficialAutoencoderConfig,
                                        OfficialDenoiserConfig, SchedulerConfig, from_dict)
from synthesis.errors import SynthesisInputError
from tumorbench_common.io import atomic_write, load_file, read_json, write_text_atomic

AUTOENCODER = "autoencoder"


def diffusion_name(organ: str, stage: str) -> str:
    if stage not in STAGES:
        raise SynthesisInputError(f"stage {stage!r}: expected one of {STAGES}")
    return f"diffusion_{organ}_{stage}"


def file_sha256(path: str | os.PathLike) -> str:
    """First 16 hex digits of the file's sha256 (recorded in checkpoint .json files)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def save_torch(path: str | os.PathLike, obj: Any) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def save_json(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2) + "\n")


def load_torch(path: str | os.PathLike, what: str, device: str | torch.device = "cpu") -> Any:
    """torch.load(weights_only=True) with a clear error naming the file."""
    return load_file(path, what, lambda p: torch.load(p, map_location=device, weights_only=True),
                     SynthesisInputError)


def load_json(path: str | os.PathLike, what: str) -> dict[str, Any]:
    return read_json(path, what, SynthesisInputError)


def export_model(directory: str | os.PathLike, name: str, state_dict: dict[str, Any], meta: dict[str, Any]) -> None:
    """Write ``name``.pt (weights) then ``name``.json (config; its presence marks completion)."""
    directory = Path(directory)
    save_torch(directory / f"{name}.pt", {k: v.detach().cpu() for k, v in state_dict.items()})
    save_json(directory / f"{name}.json", meta)


def build_autoencoder(config: AutoencoderConfig | OfficialAutoencoderConfig) -> torch.nn.Module:
    """Our VQAutoencoder, or the published architecture for an ``OfficialAutoencoderConfig``."""
    if isinstance(config, OfficialAutoencoderConfig):
        from synthesis.difftumor.official.autoencoder import OfficialVQGAN

        return OfficialVQGAN(config)
    from synthesis.difftumor.autoencoder import VQAutoencoder

    return VQAutoencoder(config)


def _arch(meta: dict[str, Any], path: Path) -> str:
    arch = meta.get("arch", "monai")  # files written before the official architecture existed
    if arch not in ("monai", "official"):
        raise SynthesisInputError(f"{path}: field 'arch' is {arch!r}, expected 'monai' or 'official'")
    return arch


def load_autoencoder(directory: str | os.PathLike, device: str | torch.device = "cpu"):
    """(autoencoder in eval mode, meta dict) from ``directory``/autoencoder.{pt,json}."""
    directory = _checkpoint_dir(directory)
    json_path = directory / f"{AUTOENCODER}.json"
    meta = load_json(json_path, "DiffTumor autoencoder config")
    cls = OfficialAutoencoderConfig if _arch(meta, json_path) == "official" else AutoencoderConfig
    model = build_autoencoder(from_dict(cls, meta.get("model", {}), str(json_path)))
    _load_state(model, directory / f"{AUTOENCODER}.pt", "DiffTumor autoencoder weights", device)
    return model.to(device).eval(), meta


def load_diffusion(directory: str | os.PathLike, organ: str, stage: str, device: str | torch.device = "cpu"):
    """(denoiser in eval mode, SchedulerConfig, meta dict) of one organ/stage model."""
    from synthesis.difftumor.denoiser import build_denoiser

    directory = _checkpoint_dir(directory)
    name = diffusion_name(organ, stage)
    json_path = directory / f"{name}.json"
    if not json_path.is_file():
        flag = "--early" if stage == "early" else "--non-early"
        official = f"{organ}_{'early' if stage == 'early' else 'noearly'}.pt"
        raise SynthesisInputError(
            f"{json_path}: DiffTumor {stage} model for {organ} not found; train it with `tumorbench generators "
            f"train diffusion DATASET --autoencoder {directory} --organ {organ} {flag} --out {directory}` or "
            f"convert the published {official} with `tumorbench generators import-official ... {flag} {official}`")
    meta = load_json(json_path, f"DiffTumor {stage} diffusion config")
    cls = OfficialDenoiserConfig if _arch(meta, json_path) == "official" else DenoiserConfig
    denoiser = build_denoiser(from_dict(cls, meta.get("denoiser", {}), str(json_path)))
    scheduler = from_dict(SchedulerConfig, meta.get("scheduler", {}), str(json_path))
    _load_state(denoiser, directory / f"{name}.pt", f"DiffTumor {stage} diffusion weights", device)
    return denoiser.to(device).eval(), scheduler, meta


def autoencoder_dir_for(directory: str | os.PathLike, diffusion_metas: list[dict[str, Any]]) -> Path:
    """Folder of the autoencoder the diffusion models in ``directory`` were trained with: the folder
    itself when it holds autoencoder.pt, else the path their .json records (``train diffusion
    --autoencoder AE --out DM``). Its sha256 must match the recorded one.

    Raises:
        SynthesisInputError: no autoencoder here and the recorded one is gone (moved), or it changed.
    """
    directory = _checkpoint_dir(directory)
    local = directory / f"{AUTOENCODER}.pt"
    recorded = next((m["autoencoder_path"] for m in diffusion_metas if m.get("autoencoder_path")), None)
    path = local if local.is_file() or recorded is None else Path(recorded)
    if not path.is_file():
        raise SynthesisInputError(
            f"{directory}: no {AUTOENCODER}.pt here, and the autoencoder the diffusion models were trained with "
            f"({path}) is missing (moved or deleted?); copy it with its .json into {directory}")
    digest = file_sha256(path)
    for meta in diffusion_metas:
        if meta.get("autoencoder_sha256") not in (None, digest):
            raise SynthesisInputError(
                f"{path}: not the autoencoder the diffusion models in {directory} were trained with (sha256 "
                f"{digest}, recorded {meta['autoencoder_sha256']}); retrain them with `tumorbench generators "
                f"train diffusion --autoencoder {path.parent}`")
    return path.parent


def _checkpoint_dir(directory: str | os.PathLike) -> Path:
    directory = Path(directory)
    if not directory.is_dir():
        raise SynthesisInputError(f"{directory}: DiffTumor checkpoint folder not found (expected autoencoder.pt, "
                                  "autoencoder.json, diffusion_<organ>_<early|nonearly>.pt/.json)")
    return directory


def _load_state(model: torch.nn.Module, path: Path, what: str, device: str | torch.device) -> None:
    state = load_torch(path, what, device)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise SynthesisInputError(f"{path}: {what} do not match the config in the .json ({exc})") from exc
