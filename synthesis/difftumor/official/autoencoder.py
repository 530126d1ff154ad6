"""The published DiffTumor VQGAN (inference parts), parameter names as in its checkpoint.

Every conv is a true 3D conv preceded by replicate "same" padding (the conv itself pads
nothing); the transposed convs are pre-padded by 1 and use conv padding 3 (exactly x2).
GroupNorm has 32 groups and eps 1e-6. The model runs depth first: (B, C, Z, X, Y).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from synthesis.difftumor.codebook import EMACodebook
from synthesis.difftumor.config import OfficialAutoencoderConfig

TO_DEPTH_FIRST = (0, 1, 4, 2, 3)  # (B, C, X, Y, Z) -> (B, C, Z, X, Y), the official permute
FROM_DEPTH_FIRST = (0, 1, 3, 4, 2)


def _same_pad(kernel: int, stride: int) -> tuple[int, ...]:
    total = kernel - stride
    side = (total // 2 + total % 2, total // 2)  # F.pad order: (before, after) per axis
    return side * 3


class PadConv(nn.Module):
    """Replicate-padded "same" Conv3d (key ``<name>.conv``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__()
        self.pad = _same_pad(kernel, stride)
        self.conv = nn.Conv3d(c_in, c_out, kernel, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.pad, mode="replicate") if any(self.pad) else x)


class PadConvTranspose(nn.Module):
    """x2 transposed conv k4 after a replicate pre-pad (key ``<name>.convt``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 4, stride: int = 2) -> None:
        super().__init__()
        self.pad = _same_pad(kernel, stride)
        self.convt = nn.ConvTranspose3d(c_in, c_out, kernel, stride=stride, padding=kernel - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convt(F.pad(x, self.pad, mode="replicate"))


def silu(x: torch.Tensor) -> torch.Tensor:
    # written out as x * sigmoid(x), the official form: F.silu rounds differently (~1e-6 here)
    return x * torch.sigmoid(x)


class SiLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return silu(x)


class ResBlock(nn.Module):
    """GN -> SiLU -> conv3 -> GN -> SiLU -> conv3, plus the identity."""

    def __init__(self, channels: int, cfg: OfficialAutoencoderConfig) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(cfg.norm_groups, channels, eps=cfg.norm_eps)
        self.conv1 = PadConv(channels, channels, 3)
        self.norm2 = nn.GroupNorm(cfg.norm_groups, channels, eps=cfg.norm_eps)
        self.conv2 = PadConv(channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(silu(self.norm1(x)))
        return x + self.conv2(silu(self.norm2(h)))


def _levels(cfg: OfficialAutoencoderConfig) -> int:
    levels = cfg.downsampling.bit_length() - 1
    if 2 ** levels != cfg.downsampling or levels < 1:
        raise ValueError(f"downsampling {cfg.downsampling}: expected a power of two >= 2")
    return levels


class Encoder(nn.Module):
    def __init__(self, cfg: OfficialAutoencoderConfig) -> None:
        super().__init__()
        hidden, levels = cfg.hidden_channels, _levels(cfg)
        self.conv_first = PadConv(1, hidden, 3)
        self.conv_blocks = nn.ModuleList()
        for level in range(levels):
            block = nn.Module()
            c_in, c_out = hidden * 2 ** level, hidden * 2 ** (level + 1)
            block.down = PadConv(c_in, c_out, 4, stride=2)
            block.res = ResBlock(c_out, cfg)
            self.conv_blocks.append(block)
        self.final_block = nn.Sequential(nn.GroupNorm(cfg.norm_groups, c_out, eps=cfg.norm_eps), SiLU())
        self.out_channels = c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_first(x)
        for block in self.conv_blocks:
            h = block.res(block.down(h))
        return self.final_block(h)


class Decoder(nn.Module):
    def __init__(self, cfg: OfficialAutoencoderConfig) -> None:
        super().__init__()
        hidden, levels = cfg.hidden_channels, _levels(cfg)
        top = hidden * 2 ** levels
        self.final_block = nn.Sequential(nn.GroupNorm(cfg.norm_groups, top, eps=cfg.norm_eps), SiLU())
        self.conv_blocks = nn.ModuleList()
        for level in range(levels):
            block = nn.Module()
            c_in = top if level == 0 else hidden * 2 ** (levels - level + 1)
            c_out = hidden * 2 ** (levels - level)
            block.up = PadConvTranspose(c_in, c_out)
            block.res1, block.res2 = ResBlock(c_out, cfg), ResBlock(c_out, cfg)
            self.conv_blocks.append(block)
        self.conv_last = PadConv(c_out, 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.final_block(x)
        for block in self.conv_blocks:
            h = block.res2(block.res1(block.up(h)))
        return self.conv_last(h)


class OfficialVQGAN(nn.Module):
    """Encoder, pre/post 1^3 convs, codebook and decoder of the published VQGAN.

    ``encode``/``decode``/``forward`` take our (B, C, X, Y, Z) layout (X, Y, Z divisible by
    ``config.downsampling``) and permute to the official depth-first order inside; the
    ``*_depth_first`` methods take (B, C, Z, X, Y) directly. Same interface as ``VQAutoencoder``.
    """

    arch = "official"

    def __init__(self, config: OfficialAutoencoderConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or OfficialAutoencoderConfig()
        self.encoder, self.decoder = Encoder(config), Decoder(config)
        width = self.encoder.out_channels
        self.pre_vq_conv = PadConv(width, config.latent_channels, 1)
        self.post_vq_conv = PadConv(config.latent_channels, width, 1)
        self.codebook = EMACodebook(config.num_codes, config.latent_channels, config.ema_decay,
                                    config.restart_threshold, config.commitment_weight)

    def encode_depth_first(self, image: torch.Tensor) -> torch.Tensor:
        """Continuous latent before quantisation (official ``encode(quantize=False)``)."""
        return self.pre_vq_conv(self.encoder(image))

    def decode_depth_first(self, latent: torch.Tensor, quantize: bool = True) -> torch.Tensor:
        if quantize:
            latent = self.codebook.quantize(latent)
        return self.decoder(self.post_vq_conv(latent))

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        return self.encode_depth_first(image.permute(TO_DEPTH_FIRST)).permute(FROM_DEPTH_FIRST)

    def decode(self, latent: torch.Tensor, quantize: bool = True) -> torch.Tensor:
        out = self.decode_depth_first(latent.permute(TO_DEPTH_FIRST), quantize)
        return out.permute(FROM_DEPTH_FIRST)

    def forward(self, image: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass in our layout: (reconstruction, commitment loss, perplexity)."""
        z = self.encode_depth_first(image.permute(TO_DEPTH_FIRST))
        z_st, commitment, _, perplexity = self.codebook(z, generator)
        return self.decoder(self.post_vq_conv(z_st)).permute(FROM_DEPTH_FIRST), commitment, perplexity

    def normalize_latent(self, latent: torch.Tensor) -> torch.Tensor:
        """Map latents to ~[-1, 1] with the codebook's global scalar min/max (official)."""
        low, high = self.codebook.value_range()
        return (latent - low) / (high - low) * 2.0 - 1.0

    def denormalize_latent(self, latent: torch.Tensor) -> torch.Tensor:
        low, high = self.codebook.value_range()
        return (latent + 1.0) / 2.0 * (high - low) + low
