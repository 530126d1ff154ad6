"""Frozen configurations of the DiffTumor models and their training, plus the presets.

``paper`` follows the official MrGiovanni/DiffTumor settings (96^3 crops at 1 mm, VQGAN with
16/32/64 channels and an 8-channel latent, 16384 codes, denoiser 24/48/96/192, batch 10).
``tiny`` is a scaled-down copy that trains on the 2 mm phantom on CPU in about a minute.
Architectures (``ARCHS``): ``monai`` (our VQGAN + MONAI ``DiffusionModelUNet``, sized by the preset)
and ``official`` (the published DiffTumor VQGAN and pseudo-3D video U-Net, ``synthesis/difftumor/
official``, one size; the preset then only sets the training).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from synthesis.errors import SynthesisInputError

STAGES = ("early", "nonearly")
PRESETS = ("tiny", "paper")
# The tiny autoencoder's latent channels, which its denoiser's input must match. 16, not the paper's 8:
# the demo's painted early tumors came out closer to the real ones' contrast (liver 22 HU fainter at 8,
# 7 HU with 16). Not because 16 channels carry an early tumor through the 12 mm latent voxel of the 3 mm
# demo phantom: they do not (docs/difftumor.md, "What the tiny early models paint").
TINY_LATENT_CHANNELS = 16
ARCHS = ("monai", "official")
HU_WINDOW = (-175.0, 250.0)


@dataclass(frozen=True)
class AutoencoderConfig:
    """VQGAN architecture. len(channels)-1 stride-2 stages: 3 channels -> 4x downsampling."""

    channels: tuple[int, ...] = (16, 32, 64)
    latent_channels: int = 8
    num_codes: int = 16384
    encoder_res_blocks: int = 1
    decoder_res_blocks: int = 2
    norm_groups: int = 8
    ema_decay: float = 0.99
    restart_threshold: float = 1.0
    commitment_weight: float = 0.25
    hu_window: tuple[float, float] = HU_WINDOW

    @property
    def downsampling(self) -> int:
        return 2 ** (len(self.channels) - 1)


@dataclass(frozen=True)
class AutoencoderTrainConfig:
    """Stage-1 training (official: Adam betas (0.5, 0.9), hinge GAN after 10k steps)."""

    crop_size: tuple[int, int, int] = (96, 96, 96)
    batch_size: int = 10
    lr: float = 3e-4
    betas: tuple[float, float] = (0.5, 0.9)
    steps: int = 80000
    lr_milestones: tuple[float, ...] = (0.5, 0.625, 0.75)  # fractions of steps, x0.1 each
    disc_start: int = 10000
    disc_channels: int = 64
    disc_layers: int = 3
    l1_weight: float = 4.0
    perceptual_weight: float = 4.0
    gan_weight: float = 1.0
    feature_match_weight: float = 4.0
    grad_clip: float = 1.0
    foreground_prob: float = 0.95
    tumor_crop_prob: float = 0.0  # extra: centre on a tumor voxel (rare texture) w.p. this
    checkpoint_every: int = 500
    amp: bool = True  # bf16 autocast, only ever used on CUDA
    seed: int = 1234


class _DenoiserInput:
    """A denoiser's input channels: noisy latent + masked-CT latent (``latent_channels`` each) + mask."""

    @property
    def in_channels(self) -> int:
        return 2 * self.latent_channels + 1


@dataclass(frozen=True)
class DenoiserConfig(_DenoiserInput):
    """MONAI DiffusionModelUNet settings; input = noisy (8) + masked-CT latent (8) + mask (1)."""

    channels: tuple[int, ...] = (24, 48, 96, 192)
    attention_levels: tuple[bool, ...] = (False, False, True, True)
    num_res_blocks: int = 2
    norm_groups: int = 8
    num_head_channels: int = 24
    latent_channels: int = 8


@dataclass(frozen=True)
class OfficialAutoencoderConfig:
    """The published VQGAN (official ``vq_gan_3d.yaml``): 16 hidden channels doubled per stride-2
    stage, GroupNorm(32, eps 1e-6), replicate "same" padding, depth-first (Z, X, Y) axis order."""

    hidden_channels: int = 16
    downsampling: int = 4
    latent_channels: int = 8
    num_codes: int = 16384
    norm_groups: int = 32
    norm_eps: float = 1e-6
    ema_decay: float = 0.99
    restart_threshold: float = 1.0
    commitment_weight: float = 0.25
    hu_window: tuple[float, float] = HU_WINDOW


@dataclass(frozen=True)
class OfficialDenoiserConfig(_DenoiserInput):
    """The published ``Unet3D`` (pseudo-3D video U-Net over depth-first latents)."""

    dim: int = 24
    dim_mults: tuple[int, ...] = (1, 2, 4, 8)
    latent_channels: int = 8
    attn_heads: int = 8
    attn_dim_head: int = 32
    resnet_groups: int = 8
    init_kernel_size: int = 7
    rel_pos_buckets: int = 32
    rel_pos_max_distance: int = 32


@dataclass(frozen=True)
class SchedulerConfig:
    """Cosine noise schedule; early: T=4 ancestral DDPM, non-early: T=200 sampled by DDIM-50.

    ``schedule`` "official": DiffTumor's (betas clipped at 0.9999, DDIM steps 1, 5, ..., 197,
    no x0 clipping in DDIM; ``schedules.py``); "monai": MONAI's schedulers as before (betas
    clipped at 0.999, DDIM with steps_offset 1 and x0 clipping)."""

    train_timesteps: int = 4
    sample_steps: int = 4
    sampler: str = "ddpm"  # ddpm | ddim
    schedule: str = "official"  # official | monai


@dataclass(frozen=True)
class DiffusionTrainConfig:
    """Stage-2 training (official: Adam 1e-4, L1 on epsilon, EMA 0.995 every 10 steps from 2000)."""

    crop_size: tuple[int, int, int] = (96, 96, 96)
    batch_size: int = 10
    lr: float = 1e-4
    steps: int = 60000
    ema_decay: float = 0.995
    ema_every: int = 10
    ema_start: int = 2000
    tumor_crop_prob: float = 0.5  # else the crop centre is a random organ voxel
    early_radius_mm: float = 10.0
    checkpoint_every: int = 1000
    amp: bool = True
    seed: int = 1234


def scheduler_for_stage(stage: str) -> SchedulerConfig:
    """Official samplers: early T=4 DDPM (4 steps), non-early T=200 DDIM (50 steps)."""
    if stage == "early":
        return SchedulerConfig(train_timesteps=4, sample_steps=4, sampler="ddpm")
    if stage == "nonearly":
        return SchedulerConfig(train_timesteps=200, sample_steps=50, sampler="ddim")
    raise SynthesisInputError(f"stage {stage!r}: expected one of {STAGES}")


def autoencoder_preset(preset: str) -> tuple[AutoencoderConfig, AutoencoderTrainConfig]:
    """(architecture, training) of the stage-1 autoencoder for ``preset``."""
    _check_preset(preset)
    if preset == "paper":
        return AutoencoderConfig(), AutoencoderTrainConfig()
    # few codes: a tiny batch has ~2k latent vectors, and codes seen less than once per step
    # (EMA count < 1) are restarted every step, which churns a large codebook
    model = AutoencoderConfig(channels=(4, 8, 16), latent_channels=TINY_LATENT_CHANNELS, num_codes=256,
                              decoder_res_blocks=1, norm_groups=4)
    # 600 steps: at 200 the autoencoder reconstructed the phantom's early tumors 3 HU darker than the
    # organ instead of 43 HU, so no diffusion model could paint a visible early tumor through it
    train = AutoencoderTrainConfig(
        crop_size=(32, 32, 32), batch_size=4, lr=1e-3, steps=600, disc_start=450, disc_channels=8,
        disc_layers=2, checkpoint_every=100, foreground_prob=0.95, tumor_crop_prob=0.5)
    return model, train


def diffusion_preset(preset: str, stage: str) -> tuple[DenoiserConfig, SchedulerConfig, DiffusionTrainConfig]:
    """(denoiser, scheduler, training) of the stage-2 model for ``preset`` and ``stage``."""
    _check_preset(preset)
    scheduler = scheduler_for_stage(stage)
    if preset == "paper":
        return DenoiserConfig(), scheduler, DiffusionTrainConfig()
    # (16, 32) channels: a train step costs 0.12 s on 2 CPU cores vs 0.31 s at (32, 64), so the
    # demo trains its six diffusion models in ~3 min; the tiny models are plumbing checks anyway
    denoiser = DenoiserConfig(channels=(16, 32), attention_levels=(False, False), num_res_blocks=1,
                              norm_groups=8, num_head_channels=16, latent_channels=TINY_LATENT_CHANNELS)
    # the non-early model (T=200) cannot learn much in a CPU-minute budget either way: 120 steps
    # keep `make demo` within 10 minutes; the early model (T=4) gets 200
    steps = 200 if stage == "early" else 120
    if stage == "nonearly":  # DDIM-10, not 50: a demo difftumor cell synthesizes ~600 times on CPU
        scheduler = replace(scheduler, sample_steps=10)
    train = DiffusionTrainConfig(crop_size=(32, 32, 32), batch_size=8, lr=2e-3, steps=steps, ema_decay=0.9,
                                 ema_every=1, ema_start=50, tumor_crop_prob=0.9, checkpoint_every=100)
    return denoiser, scheduler, train


def with_steps(config: Any, steps: int | None) -> Any:
    """Copy of a training config with ``steps`` (and step-based fields) overridden."""
    if steps is None:
        return config
    if steps < 1:
        raise SynthesisInputError(f"steps={steps}: expected a positive number of training steps")
    changes: dict[str, Any] = {"steps": steps}
    if isinstance(config, AutoencoderTrainConfig):
        changes["disc_start"] = min(config.disc_start, int(steps * config.disc_start / config.steps))
    if isinstance(config, DiffusionTrainConfig):
        changes["ema_start"] = min(config.ema_start, int(steps * config.ema_start / config.steps))
    changes["checkpoint_every"] = max(1, min(config.checkpoint_every, steps))
    return replace(config, **changes)


def to_dict(config: Any) -> dict[str, Any]:
    """JSON-ready dict of a config dataclass (tuples become lists)."""
    return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(config).items()}


def from_dict(cls: type, data: dict[str, Any], where: str = "config") -> Any:
    """Inverse of :func:`to_dict`; unknown or missing fields raise a clear error."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise SynthesisInputError(f"{where}: unknown fields {unknown} for {cls.__name__}")
    try:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
    except TypeError as exc:
        raise SynthesisInputError(f"{where}: cannot build {cls.__name__} ({exc})") from exc


def official_autoencoder_config(preset: str) -> tuple[OfficialAutoencoderConfig, AutoencoderTrainConfig]:
    """(official architecture, ``preset``'s training) of the stage-1 autoencoder."""
    _, train = autoencoder_preset(preset)
    return OfficialAutoencoderConfig(), train


def official_diffusion_config(preset: str, stage: str
                              ) -> tuple[OfficialDenoiserConfig, SchedulerConfig, DiffusionTrainConfig]:
    """(official denoiser, scheduler, ``preset``'s training) of a stage-2 model."""
    _, scheduler, train = diffusion_preset(preset, stage)
    return OfficialDenoiserConfig(), scheduler, train


def arch_of(config: Any) -> str:
    """The ``arch`` recorded in a checkpoint's JSON for a model config: "official" or "monai"."""
    return "official" if isinstance(config, (OfficialAutoencoderConfig, OfficialDenoiserConfig)) else "monai"


def _check_preset(preset: str) -> None:
    if preset not in PRESETS:
        raise SynthesisInputError(f"preset {preset!r}: expected one of {PRESETS}")
