"""Stage 2: train a latent inpainting denoiser for one organ and stage (early / non-early).

Per step: crops centred on a tumor (w.p. tumor_crop_prob) or organ voxel; the mask is the
stage's tumors (early: equivalent radius <= 10 mm); latents of the crop and of the masked crop
come from the frozen autoencoder (pre-quantisation, normalised by the codebook min/max); loss is
L1 between the true and predicted noise over the whole latent (official). EMA weights are exported.
"""
from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from synthesis.difftumor.checkpoint import AUTOENCODER, diffusion_name, export_model, load_autoencoder, load_diffusion
from synthesis.difftumor.config import (DenoiserConfig, DiffusionTrainConfig, OfficialDenoiserConfig, SchedulerConfig,
                                        arch_of, to_dict)
from synthesis.difftumor.crops import has_stage_tumors, load_volumes, sample_batch
from synthesis.difftumor.denoiser import build_denoiser, build_scheduler, condition, denoise_step_input
from synthesis.difftumor.training import (LogMetrics, autocast, file_sha256, load_resume_state, progress_bar,
                                          finish_step, restore, seeded_init, step_generators)
from synthesis.errors import SynthesisInputError

FORMAT = "tumorbench.difftumor.diffusion/1"


def train_diffusion(items: Sequence[dict[str, Any]], autoencoder_dir: str | os.PathLike, out_dir: str | os.PathLike,
                    organ: str, stage: str, denoiser_config: DenoiserConfig | OfficialDenoiserConfig,
                    scheduler_config: SchedulerConfig, train_config: DiffusionTrainConfig, *,
                    device: str | torch.device = "cpu", log_metrics: LogMetrics | None = None, progress: bool = True,
                    meta: dict[str, Any] | None = None, init: str | os.PathLike | None = None) -> Path:
    """Train (or resume) one diffusion model; exports ``out_dir``/diffusion_<organ>_<stage>.{pt,json}.

    Args:
        items: labeled training items (cases with real tumors).
        autoencoder_dir: folder with autoencoder.pt/.json (frozen here).
        stage: "early" (T=4) or "nonearly" (T=200), picks which tumors are inpainted.
        init: checkpoint folder with this organ/stage model (same architecture) to start from,
            e.g. the published weights converted by ``import-official`` (fine-tuning).
    Returns:
        path of the exported .pt (EMA weights).
    """
    device = torch.device(device)
    out_dir, name = Path(out_dir), diffusion_name(organ, stage)
    autoencoder, _ = load_autoencoder(autoencoder_dir, device)
    volumes = _stage_volumes(items, autoencoder.config.hu_window, stage, train_config.early_radius_mm)
    parts = _build(denoiser_config, train_config, device)
    scheduler = build_scheduler(scheduler_config)
    ae_sha = file_sha256(Path(autoencoder_dir) / f"{AUTOENCODER}.pt")
    record = {"organ": organ, "stage": stage, "arch": arch_of(denoiser_config), "denoiser": to_dict(denoiser_config),
              "scheduler": to_dict(scheduler_config), "train": to_dict(train_config), "autoencoder_sha256": ae_sha}
    if init is not None:
        record["init_sha256"] = _init_from(parts, init, record, device)
    state_path = out_dir / "train_state" / f"{name}.pt"
    state = load_resume_state(state_path, record, device)
    start = restore(parts, state) if state else 0
    log_every, metrics = max(1, train_config.steps // 100), {}
    with progress_bar(train_config.steps, start, f"diffusion {organ} {stage}", progress) as bar:
        for step in range(start, train_config.steps):
            rng, generator = step_generators(train_config.seed, step)
            images, masks = sample_batch(volumes, rng, train_config.batch_size, train_config.crop_size,
                                         train_config.tumor_crop_prob, target=2)
            batch = (torch.from_numpy(images).to(device), torch.from_numpy(masks).to(device))
            metrics = train_step(parts, autoencoder, scheduler, batch, step, train_config, generator)
            bar.update(1)
            bar.set_postfix(loss=f"{metrics['diffusion_loss']:.4f}")
            finish_step(step, train_config.steps, metrics, log_metrics=log_metrics, log_every=log_every,
                        checkpoint_every=train_config.checkpoint_every, state_path=state_path,
                        config=record, modules=parts)
    # where the autoencoder is (with its sha256 in ``record``): a folder without autoencoder.pt finds it
    export = dict(meta or {}, format=FORMAT, steps_done=train_config.steps, final_metrics=metrics,
                  autoencoder_path=str((Path(autoencoder_dir) / f"{AUTOENCODER}.pt").resolve()), **record)
    export_model(out_dir, name, parts["ema"].state_dict(), export)
    return out_dir / f"{name}.pt"


def _stage_volumes(items, window, stage: str, early_radius_mm: float):
    volumes = load_volumes(items, window, stage, early_radius_mm)
    if has_stage_tumors(volumes):
        return volumes
    volumes = load_volumes(items, window, None, early_radius_mm)
    if not has_stage_tumors(volumes):
        raise SynthesisInputError("no tumor voxels (label 2) in the training cases: the diffusion model "
                                  "learns from real tumors, give it labeled cases")
    warnings.warn(f"no {stage} tumors (radius {'<=' if stage == 'early' else '>'} {early_radius_mm} mm) in the "
                  "training cases; training on all tumors instead", stacklevel=3)
    return volumes


def _build(config: DenoiserConfig, cfg: DiffusionTrainConfig, device: torch.device) -> dict[str, Any]:
    with seeded_init(cfg.seed):
        denoiser = build_denoiser(config).to(device).train()
    ema = copy.deepcopy(denoiser).eval().requires_grad_(False)
    return {"denoiser": denoiser, "ema": ema, "opt": torch.optim.Adam(denoiser.parameters(), lr=cfg.lr)}


def _init_from(parts: dict[str, Any], init, record: dict[str, Any], device: torch.device) -> str:
    """Start the denoiser and its EMA from ``init``'s organ/stage model; returns that file's sha256."""
    organ, stage = record["organ"], record["stage"]
    source, _, meta = load_diffusion(init, organ, stage, device)
    if (meta.get("arch", "monai"), meta.get("denoiser")) != (record["arch"], record["denoiser"]):
        raise SynthesisInputError(f"{init}: --init {stage} model for {organ} has another architecture "
                                  f"({meta.get('arch', 'monai')}) or size than the one being trained ({record['arch']})")
    parts["denoiser"].load_state_dict(source.state_dict())
    parts["ema"].load_state_dict(source.state_dict())
    return file_sha256(Path(init) / f"{diffusion_name(organ, stage)}.pt")


def train_step(parts: dict[str, Any], autoencoder, scheduler, batch: tuple[torch.Tensor, torch.Tensor], step: int,
               cfg: DiffusionTrainConfig, generator: torch.Generator) -> dict[str, float]:
    """One epsilon-prediction update on (images, masks), each (B, 1, X, Y, Z); then the EMA update."""
    images, masks = batch
    denoiser, device = parts["denoiser"], images.device
    with torch.no_grad():
        latent = autoencoder.normalize_latent(autoencoder.encode(images))
        cond = condition(autoencoder, images, masks)
    timesteps = torch.randint(0, scheduler.num_train_timesteps, (len(images),), generator=generator).to(device)
    noise = torch.randn(latent.shape, generator=generator).to(device)
    noisy = scheduler.add_noise(latent, noise, timesteps)
    with autocast(device, cfg.amp):
        predicted = denoiser(denoise_step_input(noisy, cond), timesteps=timesteps)
        loss = F.l1_loss(predicted.float(), noise)
    parts["opt"].zero_grad(set_to_none=True)
    loss.backward()
    parts["opt"].step()
    _update_ema(parts["ema"], denoiser, step, cfg)
    return {"diffusion_loss": float(loss.detach())}


@torch.no_grad()
def _update_ema(ema: torch.nn.Module, model: torch.nn.Module, step: int, cfg: DiffusionTrainConfig) -> None:
    """Official: EMA := model before ``ema_start``, then lerp with ``ema_decay`` every ``ema_every`` steps."""
    if step < cfg.ema_start:
        ema.load_state_dict(model.state_dict())
    elif step % cfg.ema_every == 0:
        for ema_param, param in zip(ema.parameters(), model.parameters()):
            ema_param.lerp_(param, 1.0 - cfg.ema_decay)
        for ema_buffer, buffer in zip(ema.buffers(), model.buffers()):
            ema_buffer.copy_(buffer)
