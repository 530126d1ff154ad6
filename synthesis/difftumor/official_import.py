"""Published DiffTumor files -> an ordinary TumorBench checkpoint folder.

Inputs: ``AutoencoderModel.ckpt`` (Lightning; its ``state_dict`` keys have no prefix) and the
diffusion files ``<organ>_early.pt`` / ``<organ>_noearly.pt`` (``{step, model, ema, scaler}``,
each state dict = 12 schedule buffers [T] + ``denoise_fn.*`` + a ``vqgan.*`` copy). We keep the
EMA denoiser weights (what the official sampler uses), the autoencoder's inference tensors
(the discriminators and LPIPS are dropped) and check every expected key and shape first, so a
wrong, truncated or other-stage file fails with the first mismatch named and nothing is written.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import torch

from synthesis.difftumor.checkpoint import AUTOENCODER, diffusion_name, export_model, load_torch
from synthesis.difftumor.config import (OfficialAutoencoderConfig, OfficialDenoiserConfig, scheduler_for_stage,
                                        to_dict)
from synthesis.difftumor.official.autoencoder import OfficialVQGAN
from synthesis.difftumor.official.denoiser import OfficialUnet3D
from synthesis.difftumor.official.unpickle import load_relaxed, plain_config
from synthesis.difftumor.schedules import schedule_buffers
from synthesis.difftumor.training import file_sha256
from synthesis.errors import SynthesisInputError

TRAINING_ONLY = ("image_discriminator.", "video_discriminator.", "perceptual_model.")
CODEBOOK_KEYS = {"codebook.embeddings": "codebook.embeddings", "codebook.N": "codebook.cluster_size",
                 "codebook.z_avg": "codebook.embed_sum"}  # official buffer -> our EMACodebook buffer
STAGE_TIMESTEPS = {"early": 4, "nonearly": 200}
OFFICIAL_FILE_STAGE = {"early": "early", "noearly": "nonearly"}
CROP_SIZE = [96, 96, 96]
SPACING = [1.0, 1.0, 1.0]
# architecture fields of the official vq_gan_3d config that the key shapes do not pin down (or do)
OFFICIAL_AE_HPARAMS = {"n_hiddens": 16, "downsample": [4, 4, 4], "embedding_dim": 8, "n_codes": 16384,
                       "norm_type": "group", "num_groups": 32, "padding_type": "replicate"}
LICENCE = "published DiffTumor weights (MrGiovanni/DiffTumor), CC BY-NC-ND 4.0: do not redistribute"


def autoencoder_shapes() -> dict[str, tuple[int, ...]]:
    """Official key -> shape of every autoencoder tensor inference needs."""
    ours = OfficialVQGAN().state_dict()
    shapes = {k: tuple(v.shape) for k, v in ours.items() if not k.startswith("codebook.")}
    shapes.update({official: tuple(ours[mine].shape) for official, mine in CODEBOOK_KEYS.items()})
    return shapes


def check_keys(found: Mapping[str, Any], expected: Mapping[str, tuple[int, ...]], where: str) -> None:
    """Raise on the first expected key that is missing, not a tensor or of another shape."""
    for key, shape in expected.items():
        if key not in found:
            raise SynthesisInputError(f"{where}: key {key!r} missing (a wrong or truncated file?)")
        value = found[key]
        if not isinstance(value, torch.Tensor):
            raise SynthesisInputError(f"{where}: key {key!r} is a {type(value).__name__}, expected a tensor")
        if tuple(value.shape) != shape:
            raise SynthesisInputError(f"{where}: key {key!r} has shape {list(value.shape)}, expected {list(shape)}")


def autoencoder_state(official: Mapping[str, Any], where: str) -> dict[str, torch.Tensor]:
    """``OfficialVQGAN`` state dict from the official VQGAN ``state_dict`` (training-only keys dropped)."""
    expected = autoencoder_shapes()
    check_keys(official, expected, where)
    unknown = [k for k in official if k not in expected and not k.startswith(TRAINING_ONLY)]
    if unknown:
        raise SynthesisInputError(f"{where}: unexpected key {unknown[0]!r} (not the DiffTumor VQGAN?)")
    state = {CODEBOOK_KEYS.get(k, k): official[k].detach().float().clone() for k in expected}
    state["codebook.initialized"] = torch.tensor(True)
    return state


def check_hyperparameters(lightning: Mapping[str, Any], where: str) -> dict[str, Any] | None:
    """The autoencoder's recorded architecture fields, checked against the official values
    (GroupNorm groups and padding change the numbers without changing any shape). None when the
    file records no readable config."""
    config = plain_config((lightning.get("hyper_parameters") or {}).get("cfg"))
    model = config.get("model") if isinstance(config, dict) else None
    if not isinstance(model, dict):
        return None
    found = {key: model[key] for key in OFFICIAL_AE_HPARAMS if key in model}
    for key, value in found.items():
        if value != OFFICIAL_AE_HPARAMS[key]:
            raise SynthesisInputError(f"{where}: hyper_parameters cfg.model.{key} is {value!r}, the official "
                                      f"architecture has {OFFICIAL_AE_HPARAMS[key]!r}")
    return found


def denoiser_state(checkpoint: Any, where: str, stage: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(``OfficialUnet3D`` state dict from the EMA weights, the ``vqgan.*`` copy) of a diffusion file."""
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("ema"), Mapping):
        raise SynthesisInputError(f"{where}: expected a DiffTumor diffusion file (a dict with 'step', 'model', "
                                  "'ema', 'scaler')")
    ema, timesteps = checkpoint["ema"], STAGE_TIMESTEPS[stage]
    betas = ema.get("betas")
    if isinstance(betas, torch.Tensor) and tuple(betas.shape) != (timesteps,):
        other = "noearly (T=200)" if betas.shape[0] == 200 else f"T={betas.shape[0]}"
        raise SynthesisInputError(f"{where}: key 'betas' has shape {list(betas.shape)}: a {other} schedule, but "
                                  f"the {stage} model needs T={timesteps}")
    reference = schedule_buffers(timesteps)
    expected = {name: (timesteps,) for name in reference}
    expected.update({f"denoise_fn.{k}": tuple(v.shape) for k, v in OfficialUnet3D().state_dict().items()})
    check_keys(ema, expected, f"{where} ['ema']")
    if not torch.allclose(ema["alphas_cumprod"].float(), reference["alphas_cumprod"], rtol=1e-5, atol=1e-7):
        raise SynthesisInputError(f"{where}: key 'alphas_cumprod' is not the cosine schedule (s=0.008, T={timesteps}) "
                                  "our sampler uses")
    state = {k[len("denoise_fn."):]: v.detach().float().clone() for k, v in ema.items() if k.startswith("denoise_fn.")}
    vqgan = {k[len("vqgan."):]: v for k, v in ema.items() if k.startswith("vqgan.")}
    return state, vqgan


def check_file_name(path: Path, organ: str, stage: str) -> None:
    """Reject an official file name that says another organ or stage (``kidney_early.pt`` for liver)."""
    match = re.fullmatch(r"(liver|pancreas|kidney)_(early|noearly)", path.stem.lower())
    if match and (match[1] != organ or OFFICIAL_FILE_STAGE[match[2]] != stage):
        raise SynthesisInputError(f"{path}: this is the {match[1]} {match[2]} model, expected {organ}'s "
                                  f"{'early' if stage == 'early' else 'noearly'} model")


def copy_difference(vqgan_copy: Mapping[str, Any], autoencoder: Mapping[str, torch.Tensor]) -> float | None:
    """Max abs difference between the diffusion file's ``vqgan.*`` copy and the autoencoder (None: no copy)."""
    worst = None
    for official, mine in [(k, CODEBOOK_KEYS.get(k, k)) for k in autoencoder_shapes()]:
        value = vqgan_copy.get(official)
        if not isinstance(value, torch.Tensor) or value.shape != autoencoder[mine].shape:
            return None
        difference = float((value.float() - autoencoder[mine]).abs().max())
        worst = difference if worst is None else max(worst, difference)
    return worst


def _source(path: Path, **extra: Any) -> dict[str, Any]:
    return {"file": path.name, "sha256_16": file_sha256(path), "licence": LICENCE, **extra}


def import_official(autoencoder: str | Path, organ: str, out: str | Path, *, early: str | Path | None = None,
                    non_early: str | Path | None = None) -> Path:
    """Convert the published files into ``out`` (autoencoder + the given organ/stage models)."""
    autoencoder, out = Path(autoencoder), Path(out)
    if not autoencoder.is_file():
        raise SynthesisInputError(f"{autoencoder}: DiffTumor AutoencoderModel.ckpt not found")
    try:
        lightning = load_relaxed(autoencoder)
    except Exception as exc:  # zip / pickle errors of a wrong or truncated file
        raise SynthesisInputError(f"{autoencoder}: cannot read ({type(exc).__name__}: {exc})") from exc
    if not isinstance(lightning, Mapping) or not isinstance(lightning.get("state_dict"), Mapping):
        raise SynthesisInputError(f"{autoencoder}: expected a Lightning checkpoint with a 'state_dict'")
    ae_state = autoencoder_state(lightning["state_dict"], f"{autoencoder} ['state_dict']")
    hparams = check_hyperparameters(lightning, str(autoencoder))
    models = {}
    for stage, path in (("early", early), ("nonearly", non_early)):
        if path is not None:
            path = Path(path)
            check_file_name(path, organ, stage)
            checkpoint = load_torch(path, "DiffTumor diffusion file")
            state, vqgan = denoiser_state(checkpoint, str(path), stage)
            meta = {"source": _source(path, weights="ema", step=_plain(checkpoint.get("step"))),
                    "vqgan_copy_max_abs_diff": copy_difference(vqgan, ae_state)}
            models[stage] = (state, meta)
    if not models:
        raise SynthesisInputError("import-official: give --early and/or --non-early diffusion files")
    _write(out, organ, ae_state, _source(autoencoder, hyper_parameters_checked=hparams), models)
    return out


def _plain(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, type(None))) else str(value)


def _write(out: Path, organ: str, ae_state, ae_source, models) -> None:
    export_model(out, AUTOENCODER, ae_state, {
        "format": "tumorbench.difftumor.autoencoder/1", "arch": "official", "preset": "official",
        "model": to_dict(OfficialAutoencoderConfig()), "train": {"crop_size": CROP_SIZE}, "spacing": SPACING,
        "source": ae_source})
    ae_sha = file_sha256(out / f"{AUTOENCODER}.pt")
    for stage, (state, meta) in models.items():
        export_model(out, diffusion_name(organ, stage), state, {
            "format": "tumorbench.difftumor.diffusion/1", "arch": "official", "preset": "official",
            "organ": organ, "stage": stage, "denoiser": to_dict(OfficialDenoiserConfig()),
            "scheduler": to_dict(scheduler_for_stage(stage)), "train": {"crop_size": CROP_SIZE},
            "spacing": SPACING, "autoencoder_sha256": ae_sha, **meta})
