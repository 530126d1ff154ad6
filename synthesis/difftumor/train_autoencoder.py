"""Stage 1: train the 3D VQGAN autoencoder on CT crops (resumable, deterministic per step).

Generator loss (official weights): 4*L1 + commitment + 4*perceptual substitute
+ [after disc_start] 1*hinge-GAN + 4*feature matching; discriminator: hinge loss.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from synthesis.difftumor import losses
from synthesis.difftumor.checkpoint import AUTOENCODER, build_autoencoder, export_model, load_autoencoder
from synthesis.difftumor.config import (AutoencoderConfig, AutoencoderTrainConfig, OfficialAutoencoderConfig, arch_of,
                                        to_dict)
from synthesis.difftumor.crops import load_volumes, sample_batch
from synthesis.difftumor.discriminator import build_discriminator
from synthesis.difftumor.training import (LogMetrics, autocast, file_sha256, load_resume_state, multistep_lr,
                                          progress_bar, finish_step, restore, seeded_init, set_lr, step_generators)
from synthesis.errors import SynthesisInputError

FORMAT = "tumorbench.difftumor.autoencoder/1"


def train_autoencoder(items: Sequence[dict[str, Any]], out_dir: str | os.PathLike,
                      model_config: AutoencoderConfig | OfficialAutoencoderConfig,
                      train_config: AutoencoderTrainConfig, *, device: str | torch.device = "cpu",
                      log_metrics: LogMetrics | None = None, progress: bool = True,
                      meta: dict[str, Any] | None = None, init: str | os.PathLike | None = None) -> Path:
    """Train (or resume) the autoencoder and export ``out_dir``/autoencoder.{pt,json}.

    Args:
        items: training item dicts (NIfTI paths or arrays, see ``crops.load_item``).
        out_dir: checkpoint folder; ``train_state/autoencoder.pt`` holds the resume state.
        log_metrics: optional ``(dict, step)`` callback (e.g. MLflow), called every few steps.
        meta: extra JSON fields stored in autoencoder.json (preset, dataset fingerprint...).
        init: checkpoint folder whose autoencoder (same architecture) the training starts from,
            e.g. the published weights converted by ``import-official`` (fine-tuning).
    Returns:
        path of the exported autoencoder.pt.
    """
    device = torch.device(device)
    out_dir = Path(out_dir)
    volumes = load_volumes(items, model_config.hu_window)
    parts = _build(model_config, train_config, device)
    config_record = {"arch": arch_of(model_config), "model": to_dict(model_config), "train": to_dict(train_config)}
    if init is not None:
        config_record["init_sha256"] = init_from(parts["autoencoder"], init, device)
    state_path = out_dir / "train_state" / f"{AUTOENCODER}.pt"
    state = load_resume_state(state_path, config_record, device)
    start = restore(parts, state) if state else 0
    log_every = max(1, train_config.steps // 100)
    metrics: dict[str, float] = {}
    with progress_bar(train_config.steps, start, "autoencoder", progress) as bar:
        for step in range(start, train_config.steps):
            rng, generator = step_generators(train_config.seed, step)
            images, _ = sample_batch(volumes, rng, train_config.batch_size, train_config.crop_size,
                                     train_config.foreground_prob, target=1,
                                     tumor_prob=train_config.tumor_crop_prob)
            metrics = train_step(parts, torch.from_numpy(images).to(device), step, train_config, generator)
            bar.update(1)
            bar.set_postfix(l1=f"{metrics['ae_l1']:.4f}")
            finish_step(step, train_config.steps, metrics, log_metrics=log_metrics, log_every=log_every,
                        checkpoint_every=train_config.checkpoint_every, state_path=state_path,
                        config=config_record, modules=parts)
    record = dict(meta or {}, format=FORMAT, steps_done=train_config.steps, final_metrics=metrics, **config_record)
    export_model(out_dir, AUTOENCODER, parts["autoencoder"].state_dict(), record)
    return out_dir / f"{AUTOENCODER}.pt"


def init_from(autoencoder: torch.nn.Module, init: str | os.PathLike, device: torch.device) -> str:
    """Copy the weights of ``init``/autoencoder.pt into ``autoencoder``; returns that file's sha256."""
    source, _ = load_autoencoder(init, device)
    if source.config != autoencoder.config:
        raise SynthesisInputError(f"{init}: --init autoencoder has another architecture ({arch_of(source.config)}) "
                                  f"than the one being trained ({arch_of(autoencoder.config)})")
    autoencoder.load_state_dict(source.state_dict())
    return file_sha256(Path(init) / f"{AUTOENCODER}.pt")


def _build(model_config, cfg: AutoencoderTrainConfig, device: torch.device) -> dict[str, Any]:
    with seeded_init(cfg.seed):
        autoencoder = build_autoencoder(model_config).to(device).train()
        discriminator = build_discriminator(cfg.disc_channels, cfg.disc_layers).to(device).train()
    return {
        "autoencoder": autoencoder,
        "discriminator": discriminator,
        "opt_g": torch.optim.Adam(autoencoder.parameters(), lr=cfg.lr, betas=cfg.betas),
        "opt_d": torch.optim.Adam(discriminator.parameters(), lr=cfg.lr, betas=cfg.betas),
    }


def train_step(parts: dict[str, Any], images: torch.Tensor, step: int, cfg: AutoencoderTrainConfig,
               generator: torch.Generator) -> dict[str, float]:
    """One generator (+ discriminator, once enabled) update on (B, 1, X, Y, Z) crops in [-1, 1]."""
    autoencoder, discriminator = parts["autoencoder"], parts["discriminator"]
    lr = multistep_lr(cfg.lr, step, cfg.steps, cfg.lr_milestones)
    set_lr(parts["opt_g"], lr)
    set_lr(parts["opt_d"], lr)
    gan_on = step >= cfg.disc_start
    with autocast(images.device, cfg.amp):
        recon, commitment, perplexity = autoencoder(images, generator)
        recon = recon.float()
        l1 = F.l1_loss(recon, images)
        structure = losses.multiscale_structure_loss(recon, images)
        loss = cfg.l1_weight * l1 + commitment + cfg.perceptual_weight * structure
        metrics = {"ae_l1": l1.item(), "ae_commitment": commitment.item(), "ae_structure": structure.item(),
                   "ae_perplexity": perplexity.item(), "ae_lr": lr}
        if gan_on:
            with torch.no_grad():
                real_features = discriminator(images)
            fake_features = discriminator(recon)
            adversarial = losses.generator_adversarial_loss(fake_features[-1])
            matching = losses.feature_matching_loss(real_features, fake_features)
            loss = loss + cfg.gan_weight * adversarial + cfg.feature_match_weight * matching
            metrics.update(ae_gan_g=adversarial.item(), ae_feature_matching=matching.item())
    _update(parts["opt_g"], loss, autoencoder.parameters(), cfg.grad_clip)
    if gan_on:
        with autocast(images.device, cfg.amp):
            d_loss = losses.hinge_discriminator_loss(discriminator(images)[-1], discriminator(recon.detach())[-1])
        _update(parts["opt_d"], d_loss, discriminator.parameters(), cfg.grad_clip)
        metrics["ae_gan_d"] = d_loss.item()
    metrics["ae_loss"] = loss.item()
    return metrics


def _update(optimizer: torch.optim.Optimizer, loss: torch.Tensor, params, clip: float) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(params, clip)
    optimizer.step()
