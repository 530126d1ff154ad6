"""Latent denoiser (MONAI ``DiffusionModelUNet`` or the published ``official`` one) and schedulers.

Schedulers: the official DiffTumor ones by default (``schedules.py``), MONAI's DDPM / DDIM when
a config says ``schedule="monai"`` (models trained before the official schedules).

Deviation of the ``monai`` architecture from the official pseudo-3D "video" U-Net ((1,3,3) convs
+ temporal attention along depth, in-plane down-sampling only): MONAI's U-Net uses full 3D
convolutions and 3D attention.
At 24^3 latents this costs little and is isotropic, which suits resampled CT. The ``official``
architecture (``official/denoiser.py``) is the published network itself.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.nets import DiffusionModelUNet
from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

from synthesis.difftumor.config import DenoiserConfig, OfficialDenoiserConfig, SchedulerConfig
from synthesis.difftumor.schedules import OfficialDDIM, OfficialDDPM
from synthesis.errors import SynthesisInputError


def build_denoiser(config: DenoiserConfig | OfficialDenoiserConfig) -> torch.nn.Module:
    """epsilon-predicting U-Net: (B, 17, x, y, z) + timesteps (B,) -> (B, 8, x, y, z)."""
    if isinstance(config, OfficialDenoiserConfig):
        from synthesis.difftumor.official.denoiser import OfficialUnet3D

        return OfficialUnet3D(config)
    return DiffusionModelUNet(
        spatial_dims=3, in_channels=config.in_channels, out_channels=config.latent_channels,
        channels=config.channels, attention_levels=config.attention_levels,
        num_res_blocks=config.num_res_blocks, norm_num_groups=config.norm_groups,
        num_head_channels=config.num_head_channels)


def build_scheduler(config: SchedulerConfig):
    """Cosine-schedule sampler, ready to iterate over ``.timesteps``.

    "official": DiffTumor's schedules (betas clipped at 0.9999; DDPM clamps x0 to [-1, 1], DDIM
    on 1, 5, ..., 197 without clipping). "monai": MONAI's (betas clipped at 0.999, x0 clamped
    in both, DDIM with steps_offset 1)."""
    if config.schedule == "official":
        if config.sampler == "ddpm":
            return OfficialDDPM(config.train_timesteps, config.sample_steps)
        if config.sampler == "ddim":
            return OfficialDDIM(config.train_timesteps, config.sample_steps)
    elif config.schedule != "monai":
        raise SynthesisInputError(f"scheduler schedule {config.schedule!r}: expected 'official' or 'monai'")
    if config.sampler == "ddpm":
        scheduler = DDPMScheduler(config.train_timesteps, schedule="cosine", clip_sample=True)
    elif config.sampler == "ddim":
        scheduler = DDIMScheduler(config.train_timesteps, schedule="cosine", clip_sample=True, steps_offset=1)
    else:
        raise SynthesisInputError(f"scheduler sampler {config.sampler!r}: expected 'ddpm' or 'ddim'")
    scheduler.set_timesteps(config.sample_steps)
    return scheduler


def condition(autoencoder, image: torch.Tensor, tumor_mask: torch.Tensor) -> torch.Tensor:
    """Conditioning channels: masked-CT latent (8) + nearest-downsampled mask*2-1 (1).

    Args:
        autoencoder: a ``VQAutoencoder`` (eval mode).
        image: (B, 1, X, Y, Z) CT in [-1, 1].
        tumor_mask: (B, 1, X, Y, Z) float {0, 1}.
    Returns:
        (B, latent_channels + 1, X/4, Y/4, Z/4).
    """
    masked_latent = autoencoder.normalize_latent(autoencoder.encode(image * (1.0 - tumor_mask)))
    mask_small = F.interpolate(tumor_mask * 2.0 - 1.0, size=masked_latent.shape[2:], mode="nearest")
    return torch.cat([masked_latent, mask_small], dim=1)


def denoise_step_input(noisy_latent: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """U-Net input: noisy latent (8) then the conditioning (9) along channels."""
    return torch.cat([noisy_latent, cond], dim=1)
