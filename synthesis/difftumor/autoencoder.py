"""3D VQGAN autoencoder (official DiffTumor / TATS layout, 4x downsampling, 8-channel latent).

Encoder: 3^3 conv -> [stride-2 conv k4 + ResBlock] x 2 -> GN+SiLU -> 1^3 conv to the latent.
Decoder: 1^3 conv -> GN+SiLU -> [transposed conv k4 s2 + 2 ResBlocks] x 2 -> 3^3 conv to 1 channel.
Intensities are the HU window [-175, 250] mapped to [-1, 1].
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from synthesis.difftumor.codebook import EMACodebook
from synthesis.difftumor.config import AutoencoderConfig


def hu_to_unit(hu: np.ndarray | torch.Tensor, window: tuple[float, float]):
    """Clip HU to ``window`` and scale to [-1, 1] (numpy or torch)."""
    low, high = window
    scaled = (hu - low) / (high - low) * 2.0 - 1.0
    return scaled.clip(-1.0, 1.0)


def unit_to_hu(unit: np.ndarray | torch.Tensor, window: tuple[float, float]):
    """Inverse of :func:`hu_to_unit` inside the window."""
    low, high = window
    return (unit + 1.0) / 2.0 * (high - low) + low


def _conv(c_in: int, c_out: int, kernel: int) -> nn.Conv3d:
    # "same" conv with replicate padding as the official SamePadConv3d (no dark crop border)
    return nn.Conv3d(c_in, c_out, kernel, padding=kernel // 2, padding_mode="replicate")


class ResBlock(nn.Module):
    """GN -> SiLU -> conv3 -> GN -> SiLU -> conv3, plus the identity."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(groups, channels), nn.SiLU(), _conv(channels, channels, 3),
            nn.GroupNorm(groups, channels), nn.SiLU(), _conv(channels, channels, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _encoder(cfg: AutoencoderConfig) -> nn.Sequential:
    ch, g = cfg.channels, cfg.norm_groups
    layers: list[nn.Module] = [_conv(1, ch[0], 3)]
    for c_in, c_out in zip(ch[:-1], ch[1:]):
        layers.append(nn.Conv3d(c_in, c_out, 4, stride=2, padding=1))
        layers += [ResBlock(c_out, g) for _ in range(cfg.encoder_res_blocks)]
    layers += [nn.GroupNorm(g, ch[-1]), nn.SiLU(), nn.Conv3d(ch[-1], cfg.latent_channels, 1)]
    return nn.Sequential(*layers)


def _decoder(cfg: AutoencoderConfig) -> nn.Sequential:
    ch, g = cfg.channels, cfg.norm_groups
    layers: list[nn.Module] = [nn.Conv3d(cfg.latent_channels, ch[-1], 1), nn.GroupNorm(g, ch[-1]), nn.SiLU()]
    outs = list(reversed(ch[1:]))  # official 64->64 then 64->32
    for c_in, c_out in zip([ch[-1]] + outs[:-1], outs):
        layers.append(nn.ConvTranspose3d(c_in, c_out, 4, stride=2, padding=1))
        layers += [ResBlock(c_out, g) for _ in range(cfg.decoder_res_blocks)]
    layers.append(_conv(outs[-1], 1, 3))
    return nn.Sequential(*layers)


class VQAutoencoder(nn.Module):
    """VQGAN generator part: encoder, EMA codebook, decoder.

    Shapes: image (B, 1, X, Y, Z) in [-1, 1] with X, Y, Z divisible by ``config.downsampling``;
    latent (B, latent_channels, X/4, Y/4, Z/4).
    """

    def __init__(self, config: AutoencoderConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = _encoder(config)
        self.decoder = _decoder(config)
        self.codebook = EMACodebook(config.num_codes, config.latent_channels, config.ema_decay,
                                    config.restart_threshold, config.commitment_weight)

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """Pre-quantisation latent (what the diffusion model works on)."""
        return self.encoder(image)

    def decode(self, latent: torch.Tensor, quantize: bool = True) -> torch.Tensor:
        """Image in [-1, 1] (not clamped) from a latent, snapped to the codebook first by default."""
        if quantize:
            latent = self.codebook.quantize(latent)
        return self.decoder(latent)

    def forward(self, image: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: (reconstruction, commitment loss, perplexity)."""
        z_st, commitment, _, perplexity = self.codebook(self.encode(image), generator)
        return self.decoder(z_st), commitment, perplexity

    def normalize_latent(self, latent: torch.Tensor) -> torch.Tensor:
        """Map latents to ~[-1, 1] with the codebook's global min/max (official)."""
        low, high = self.codebook.value_range()
        return (latent - low) / max(high - low, 1e-8) * 2.0 - 1.0

    def denormalize_latent(self, latent: torch.Tensor) -> torch.Tensor:
        low, high = self.codebook.value_range()
        return (latent + 1.0) / 2.0 * (high - low) + low
