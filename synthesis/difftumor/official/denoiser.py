"""The published DiffTumor denoiser ``Unet3D``: a pseudo-3D ("video") U-Net over depth-first latents.

(1,3,3) convs, per-slice linear attention, softmax attention along depth with rotary q/k and a
relative position bias, in-plane-only down/upsampling (depth is never resampled), sinusoidal
embedding of the integer step index. Input: noisy latent (8) + masked-CT latent (8) + mask (1).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from synthesis.difftumor.config import OfficialDenoiserConfig
from synthesis.difftumor.official.attention import (AlongDepth, Attention, InPlane, PreNorm, RelativePositionBias,
                                                    Residual, RotaryEmbedding, SpatialLinearAttention)
from synthesis.difftumor.official.autoencoder import FROM_DEPTH_FIRST, TO_DEPTH_FIRST


class SinusoidalEmbedding(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(torch.arange(half, device=t.device) * -(math.log(10000) / (half - 1)))
        angles = t[:, None] * freqs[None, :]
        return torch.cat((angles.sin(), angles.cos()), dim=-1)


class Block(nn.Module):
    """(1,3,3) conv -> GroupNorm -> [scale/shift] -> SiLU."""

    def __init__(self, dim: int, dim_out: int, groups: int) -> None:
        super().__init__()
        self.proj = nn.Conv3d(dim, dim_out, (1, 3, 3), padding=(0, 1, 1))
        self.norm = nn.GroupNorm(groups, dim_out)

    def forward(self, x: torch.Tensor, scale_shift: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        x = self.norm(self.proj(x))
        if scale_shift is not None:
            scale, shift = scale_shift
            x = x * (scale + 1) + shift
        return F.silu(x)


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, dim_out: int, groups: int, time_dim: int | None = None) -> None:
        super().__init__()
        if time_dim is not None:
            self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(time_dim, dim_out * 2))
        self.block1, self.block2 = Block(dim, dim_out, groups), Block(dim_out, dim_out, groups)
        self.res_conv = nn.Conv3d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

    def forward(self, x: torch.Tensor, time_emb: torch.Tensor | None = None) -> torch.Tensor:
        scale_shift = None
        if hasattr(self, "mlp") and time_emb is not None:
            scale_shift = self.mlp(time_emb)[:, :, None, None, None].chunk(2, dim=1)
        return self.block2(self.block1(x, scale_shift)) + self.res_conv(x)


class OfficialUnet3D(nn.Module):
    """epsilon-predicting denoiser; ``forward`` takes our (B, 17, X, Y, Z) layout + integer steps (B,).

    X and Y must be multiples of 8 (three in-plane halvings); Z (depth) is free.
    ``forward_depth_first`` takes the official (B, 17, Z, X, Y) order directly.
    """

    arch = "official"

    def __init__(self, config: OfficialDenoiserConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or OfficialDenoiserConfig()
        dim, heads, groups = cfg.dim, cfg.attn_heads, cfg.resnet_groups
        rotary = RotaryEmbedding(min(32, cfg.attn_dim_head))  # one module, listed under every path

        def temporal(channels: int) -> Residual:
            return Residual(PreNorm(channels, AlongDepth(Attention(channels, heads, cfg.attn_dim_head, rotary))))

        self.time_rel_pos_bias = RelativePositionBias(heads, cfg.rel_pos_buckets, cfg.rel_pos_max_distance)
        pad = cfg.init_kernel_size // 2
        self.init_conv = nn.Conv3d(cfg.in_channels, dim, (1, cfg.init_kernel_size, cfg.init_kernel_size),
                                   padding=(0, pad, pad))
        self.init_temporal_attn = temporal(dim)
        time_dim = dim * 4
        self.time_mlp = nn.Sequential(SinusoidalEmbedding(dim), nn.Linear(dim, time_dim), nn.GELU(),
                                      nn.Linear(time_dim, time_dim))
        dims = [dim, *(dim * m for m in cfg.dim_mults)]
        pairs = list(zip(dims[:-1], dims[1:]))
        self.downs, self.ups = nn.ModuleList(), nn.ModuleList()
        for index, (c_in, c_out) in enumerate(pairs):
            last = index == len(pairs) - 1
            self.downs.append(nn.ModuleList([
                ResnetBlock(c_in, c_out, groups, time_dim), ResnetBlock(c_out, c_out, groups, time_dim),
                Residual(PreNorm(c_out, SpatialLinearAttention(c_out, heads, cfg.attn_dim_head))), temporal(c_out),
                nn.Identity() if last else nn.Conv3d(c_out, c_out, (1, 4, 4), (1, 2, 2), (0, 1, 1))]))
        mid = dims[-1]
        self.mid_block1 = ResnetBlock(mid, mid, groups, time_dim)
        self.mid_spatial_attn = Residual(PreNorm(mid, InPlane(Attention(mid, heads, cfg.attn_dim_head))))
        self.mid_temporal_attn = temporal(mid)
        self.mid_block2 = ResnetBlock(mid, mid, groups, time_dim)
        for index, (c_in, c_out) in enumerate(reversed(pairs)):
            last = index == len(pairs) - 1
            self.ups.append(nn.ModuleList([
                ResnetBlock(c_out * 2, c_in, groups, time_dim), ResnetBlock(c_in, c_in, groups, time_dim),
                Residual(PreNorm(c_in, SpatialLinearAttention(c_in, heads, cfg.attn_dim_head))), temporal(c_in),
                nn.Identity() if last else nn.ConvTranspose3d(c_in, c_in, (1, 4, 4), (1, 2, 2), (0, 1, 1))]))
        self.final_conv = nn.Sequential(ResnetBlock(dim * 2, dim, groups), nn.Conv3d(dim, cfg.latent_channels, 1))

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """(B, 17, X, Y, Z) + (B,) integer steps -> predicted noise (B, 8, X, Y, Z)."""
        return self.forward_depth_first(x.permute(TO_DEPTH_FIRST), timesteps).permute(FROM_DEPTH_FIRST)

    def forward_depth_first(self, x: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 8 or x.shape[-2] % 8:
            raise ValueError(f"official denoiser: in-plane latent size {tuple(x.shape[-2:])} must be a multiple of 8")
        pos_bias = self.time_rel_pos_bias(x.shape[2], x.device)
        x = self.init_conv(x)
        stem = x.clone()
        x = self.init_temporal_attn(x, pos_bias=pos_bias)
        t = self.time_mlp(timesteps.reshape(-1).to(x.device))
        skips = []
        for block1, block2, spatial, temporal, down in self.downs:
            x = temporal(spatial(block2(block1(x, t), t)), pos_bias=pos_bias)
            skips.append(x)
            x = down(x)
        x = self.mid_spatial_attn(self.mid_block1(x, t))
        x = self.mid_block2(self.mid_temporal_attn(x, pos_bias=pos_bias), t)
        for block1, block2, spatial, temporal, up in self.ups:
            x = block2(block1(torch.cat((x, skips.pop()), dim=1), t), t)
            x = up(temporal(spatial(x), pos_bias=pos_bias))
        return self.final_conv(torch.cat((x, stem), dim=1))
