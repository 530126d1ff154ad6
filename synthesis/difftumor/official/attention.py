"""Attention blocks of the published DiffTumor denoiser (names = official state-dict keys).

* ``Residual(PreNorm(...))`` wrappers: x + fn(LayerNorm_over_channels(x)), gain only, eps 1e-5.
* ``SpatialLinearAttention``: per slice, 1x1 Conv2d q/k/v, q softmaxed over features, k over tokens.
* ``Attention`` (softmax): over the h*w tokens of a slice (middle block) or along depth
  ("temporal", with rotary q/k and a T5-style relative position bias).
"""
from __future__ import annotations

import math

import torch
from torch import nn


class Residual(nn.Module):
    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.fn(x, **kwargs) + x


class ChannelLayerNorm(nn.Module):
    """LayerNorm over dim 1 of (B, C, D, H, W) with a gain ``gamma`` and no bias."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(1, dim, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var = torch.var(x, dim=1, unbiased=False, keepdim=True)
        mean = torch.mean(x, dim=1, keepdim=True)
        return (x - mean) / (var + self.eps).sqrt() * self.gamma


class PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.fn, self.norm = fn, ChannelLayerNorm(dim)

    def forward(self, x: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.fn(self.norm(x), **kwargs)


class SpatialLinearAttention(nn.Module):
    """Linear attention over the h*w positions of every depth slice of (B, C, D, H, W)."""

    def __init__(self, dim: int, heads: int, dim_head: int = 32) -> None:
        super().__init__()
        self.heads, self.scale = heads, dim_head ** -0.5
        hidden = heads * dim_head
        self.to_qkv = nn.Conv2d(dim, hidden * 3, 1, bias=False)
        self.to_out = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, d, h, w = x.shape
        slices = x.permute(0, 2, 1, 3, 4).reshape(b * d, c, h, w)
        q, k, v = (part.reshape(b * d, self.heads, -1, h * w) for part in self.to_qkv(slices).chunk(3, dim=1))
        q = q.softmax(dim=-2) * self.scale
        k = k.softmax(dim=-1)
        context = torch.einsum("bhdn,bhen->bhde", k, v)
        out = torch.einsum("bhde,bhdn->bhen", context, q).reshape(b * d, -1, h, w)
        return self.to_out(out).reshape(b, d, c, h, w).permute(0, 2, 1, 3, 4)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding on interleaved pairs (the ``freqs`` buffer is in the checkpoint)."""

    def __init__(self, dim: int, theta: float = 10000.0) -> None:
        super().__init__()
        self.register_buffer("freqs", 1.0 / theta ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim))

    def rotate(self, t: torch.Tensor) -> torch.Tensor:
        """Rotate (..., n, dim) by position along n."""
        positions = torch.arange(t.shape[-2], device=t.device, dtype=self.freqs.dtype)
        angles = torch.einsum("n,f->nf", positions, self.freqs).repeat_interleave(2, dim=-1)
        pairs = t.unflatten(-1, (-1, 2))
        rotated = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
        return t * angles.cos() + rotated * angles.sin()


class RelativePositionBias(nn.Module):
    """T5 bucketed relative position bias, (heads, n, n) for a sequence of n depth slices."""

    def __init__(self, heads: int, num_buckets: int = 32, max_distance: int = 32) -> None:
        super().__init__()
        self.num_buckets, self.max_distance = num_buckets, max_distance
        self.relative_attention_bias = nn.Embedding(num_buckets, heads)

    def bucket(self, relative: torch.Tensor) -> torch.Tensor:
        half = self.num_buckets // 2
        n = -relative
        ret = (n < 0).long() * half
        n = n.abs()
        exact = half // 2
        large = exact + (torch.log(n.float() / exact) / math.log(self.max_distance / exact)
                         * (half - exact)).long()
        large = torch.minimum(large, torch.full_like(large, half - 1))
        return ret + torch.where(n < exact, n, large)

    def forward(self, n: int, device: torch.device) -> torch.Tensor:
        pos = torch.arange(n, dtype=torch.long, device=device)
        values = self.relative_attention_bias(self.bucket(pos[None, :] - pos[:, None]))
        return values.permute(2, 0, 1)


class Attention(nn.Module):
    """Softmax attention over the second-last axis of (..., n, dim); bias-free linear layers."""

    def __init__(self, dim: int, heads: int, dim_head: int = 32, rotary: RotaryEmbedding | None = None) -> None:
        super().__init__()
        self.heads, self.scale = heads, dim_head ** -0.5
        hidden = heads * dim_head
        self.to_qkv = nn.Linear(dim, hidden * 3, bias=False)
        self.to_out = nn.Linear(hidden, dim, bias=False)
        if rotary is not None:
            self.rotary_emb = rotary

    def forward(self, x: torch.Tensor, pos_bias: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = (part.unflatten(-1, (self.heads, -1)).transpose(-2, -3) for part in self.to_qkv(x).chunk(3, dim=-1))
        q = q * self.scale
        if hasattr(self, "rotary_emb"):
            q, k = self.rotary_emb.rotate(q), self.rotary_emb.rotate(k)
        sim = torch.einsum("...hid,...hjd->...hij", q, k)
        if pos_bias is not None:
            sim = sim + pos_bias
        sim = sim - sim.amax(dim=-1, keepdim=True).detach()
        out = torch.einsum("...hij,...hjd->...hid", sim.softmax(dim=-1), v)
        return self.to_out(out.transpose(-2, -3).flatten(-2))


class AlongDepth(nn.Module):
    """(B, C, D, H, W) -> attention over D for each (h, w) -> back ("temporal" attention)."""

    def __init__(self, fn: Attention) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor, pos_bias: torch.Tensor | None = None) -> torch.Tensor:
        b, c, d, h, w = x.shape
        tokens = x.permute(0, 3, 4, 2, 1).reshape(b, h * w, d, c)
        out = self.fn(tokens, pos_bias=pos_bias)
        return out.reshape(b, h, w, d, c).permute(0, 4, 3, 1, 2)


class InPlane(nn.Module):
    """(B, C, D, H, W) -> softmax attention over the h*w tokens of each slice -> back."""

    def __init__(self, fn: Attention) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, d, h, w = x.shape
        out = self.fn(x.permute(0, 2, 3, 4, 1).reshape(b, d, h * w, c))
        return out.reshape(b, d, h, w, c).permute(0, 4, 1, 2, 3)
