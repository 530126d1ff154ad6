"""The demo's tiny DiffTumor generators, shipped in ``benchmark/demo_weights/`` (~6 MB).

Training them takes ~5 CPU minutes, half the demo's budget, so the repository ships the files that
``tumorbench demo --make-generators benchmark/demo_weights`` writes: the demo phantom (default
settings), one tiny autoencoder trained on the liver dataset's CTs (the official model is shared by
all organs) and per organ an early and a non-early diffusion model trained on that organ's real
tumors. Everything is trained on fold 0's training cases only: the demo's test fold never reaches a
generator. The segmentation cells are still trained on every demo run.

``shipped_problems`` says why shipped weights cannot be used (missing files, a tiny preset that no
longer matches the JSON they were written with); the demo then trains the generators itself.
"""
from __future__ import annotations

import json
from pathlib import Path

from benchmark.data.layout import ORGANS

SHIPPED_DIR = Path(__file__).resolve().parent / "demo_weights"
STAGES = ("early", "nonearly")
FOLD = 0


def expected_configs() -> dict[str, dict]:
    """File stem -> the config fields its JSON must hold (the current tiny presets)."""
    from synthesis.difftumor.config import autoencoder_preset, diffusion_preset, to_dict

    model, train = autoencoder_preset("tiny")
    wanted = {"autoencoder": {"model": to_dict(model), "train": to_dict(train)}}
    for organ in ORGANS:
        for stage in STAGES:
            denoiser, scheduler, train = diffusion_preset("tiny", stage)
            wanted[f"diffusion_{organ}_{stage}"] = {"denoiser": to_dict(denoiser), "scheduler": to_dict(scheduler),
                                                    "train": to_dict(train)}
    return wanted


def shipped_problems(folder: Path = SHIPPED_DIR) -> list[str]:
    """Why ``folder`` cannot serve as the demo's DiffTumor checkpoint (empty list: it can)."""
    from synthesis.difftumor.training import file_sha256

    problems = []
    for stem, fields in expected_configs().items():
        json_path, weights = folder / f"{stem}.json", folder / f"{stem}.pt"
        if not (json_path.is_file() and weights.is_file()):
            problems.append(f"{weights.name}/.json missing")
            continue
        meta = json.loads(json_path.read_text())
        changed = sorted(key for key, value in fields.items() if meta.get(key) != value)
        if changed:
            problems.append(f"{json_path.name}: {changed} differ from the tiny preset")
        if stem != "autoencoder" and meta.get("autoencoder_sha256") != file_sha256(folder / "autoencoder.pt"):
            problems.append(f"{json_path.name}: trained with another autoencoder.pt")
    return problems


def train_demo_generators(phantom_dir: Path, out_dir: Path, *, progress: bool = True) -> Path:
    """Train the tiny autoencoder (liver CTs) and the six diffusion models into ``out_dir``.

    Deterministic for a given torch version and thread count (fixed seeds in the tiny presets).
    Only the exported ``*.pt``/``*.json`` files end in ``out_dir``; resumable training state goes
    to ``out_dir/../.demo_generators_state``.
    """
    import shutil

    from benchmark.generators import train_autoencoder_on_dataset, train_diffusion_on_dataset

    out_dir = Path(out_dir)
    work = out_dir.parent / ".demo_generators_state"
    train_autoencoder_on_dataset(phantom_dir / "liver", work, preset="tiny", fold=FOLD, progress=progress)
    for organ in ORGANS:
        for stage in STAGES:
            train_diffusion_on_dataset(phantom_dir / organ, work, work, stage=stage, organ=organ, preset="tiny",
                                       fold=FOLD, progress=progress)
    ship(work, out_dir)
    shutil.rmtree(work)
    return out_dir


def ship(trained: Path, out_dir: Path) -> None:
    """Copy the exported models from ``trained`` to ``out_dir``, diffusion weights in float16.

    Half precision halves the repository's share (6 x 1.8 MB -> 6 x 0.9 MB); loading casts them back
    to float32. The autoencoder stays bit-exact: the diffusion JSONs name its SHA-256.
    """
    from benchmark.io import copy_atomic, read_json, write_json_atomic
    from synthesis.difftumor.checkpoint import load_torch, save_torch

    out_dir.mkdir(parents=True, exist_ok=True)
    for stem in expected_configs():
        meta = read_json(trained / f"{stem}.json", "generator record")
        meta.pop("autoencoder_path", None)  # the autoencoder ships beside them (its sha256 is kept)
        write_json_atomic(out_dir / f"{stem}.json", meta)
        if stem == "autoencoder":
            copy_atomic(trained / f"{stem}.pt", out_dir / f"{stem}.pt")
            continue
        state = load_torch(trained / f"{stem}.pt", "diffusion weights")
        save_torch(out_dir / f"{stem}.pt", {k: v.half() if v.is_floating_point() else v for k, v in state.items()})
