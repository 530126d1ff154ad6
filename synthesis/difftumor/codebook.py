"""Vector-quantisation codebook with EMA updates and dead-code restarts (as TATS / DiffTumor).

MONAI's ``EMAQuantizer`` has no random restarts of unused codes, so this small module is ours.
The codebook is held in buffers and never touched by the optimiser.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_DISTANCE_CHUNK = 4096  # rows per distance block: bounds memory to chunk x num_codes floats


class EMACodebook(nn.Module):
    """Nearest-code quantiser of (B, D, X, Y, Z) latents.

    Args:
        num_codes: K, number of code vectors.
        dim: D, code vector length (latent channels).
        decay: EMA decay of the code counts and sums (official 0.99).
        restart_threshold: codes whose EMA count falls below this are replaced by a random
            encoder output of the current batch (official 1.0).
        commitment_weight: weight of ``MSE(z, sg(e))`` (official 0.25).
    """

    def __init__(self, num_codes: int, dim: int, decay: float = 0.99, restart_threshold: float = 1.0,
                 commitment_weight: float = 0.25) -> None:
        super().__init__()
        self.num_codes, self.dim = num_codes, dim
        self.decay, self.restart_threshold, self.commitment_weight = decay, restart_threshold, commitment_weight
        self.register_buffer("embeddings", torch.zeros(num_codes, dim))
        self.register_buffer("cluster_size", torch.zeros(num_codes))
        self.register_buffer("embed_sum", torch.zeros(num_codes, dim))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    def forward(self, z: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantise ``z``; in training mode also update the codebook (needs ``generator``).

        Returns:
            (z_q straight-through (B, D, ...), commitment loss (scalar), code indices (B, ...),
            perplexity of the code usage in this batch (scalar)).
        """
        with torch.autocast(device_type=z.device.type, enabled=False):
            z = z.float()
            flat = z.movedim(1, -1).reshape(-1, self.dim)
            if self.training and not bool(self.initialized):
                self._init_from(flat.detach(), generator)
            indices = self.nearest(flat.detach())
            if self.training:
                self._ema_update(flat.detach(), indices, generator)
            z_q = self.embeddings[indices].view(*z.shape[:1], *z.shape[2:], self.dim).movedim(-1, 1)
            commitment = self.commitment_weight * F.mse_loss(z, z_q.detach())
            z_st = z + (z_q - z).detach()
            usage = torch.bincount(indices, minlength=self.num_codes).float() / indices.numel()
            perplexity = torch.exp(-(usage * torch.log(usage + 1e-10)).sum())
        return z_st, commitment, indices.view(z.shape[0], *z.shape[2:]), perplexity

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """Snap (B, D, ...) latents to their nearest codes (no update, no gradient)."""
        flat = z.float().movedim(1, -1).reshape(-1, self.dim)
        z_q = self.embeddings[self.nearest(flat)]
        return z_q.view(*z.shape[:1], *z.shape[2:], self.dim).movedim(-1, 1).to(z.dtype)

    @torch.no_grad()
    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for each row of ``flat`` (N, D), in chunks."""
        code_norm = (self.embeddings ** 2).sum(1)
        out = []
        for chunk in flat.split(_DISTANCE_CHUNK):
            distance = code_norm[None, :] - 2.0 * chunk @ self.embeddings.t()  # ||x||^2 is constant per row
            out.append(distance.argmin(1))
        return torch.cat(out)

    def value_range(self) -> tuple[float, float]:
        """Global (min, max) of the code vectors: the official latent normalisation range."""
        return float(self.embeddings.min()), float(self.embeddings.max())

    @torch.no_grad()
    def _init_from(self, flat: torch.Tensor, generator: torch.Generator | None) -> None:
        # Official: first batch of encoder outputs, tiled + small noise when there are too few.
        sample = self._random_rows(flat, generator)
        self.embeddings.copy_(sample)
        self.embed_sum.copy_(sample)
        self.cluster_size.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, indices: torch.Tensor, generator: torch.Generator | None) -> None:
        counts = torch.bincount(indices, minlength=self.num_codes).float()
        sums = torch.zeros_like(self.embed_sum).index_add_(0, indices, flat)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.cluster_size.sum()
        weights = (self.cluster_size + 1e-7) / (total + self.num_codes * 1e-7) * total
        self.embeddings.copy_(self.embed_sum / weights[:, None])
        dead = self.cluster_size < self.restart_threshold
        if bool(dead.any()):
            # Restart: a dead code jumps to a random encoder vector; its EMA sum follows so the
            # next update keeps it there instead of pulling it back (TATS forgets this).
            fresh = self._random_rows(flat, generator)[dead]
            self.embeddings[dead] = fresh
            self.embed_sum[dead] = fresh * weights[dead, None]

    def _random_rows(self, flat: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """K random rows of ``flat`` (tiled with noise std 0.01/sqrt(D) when N < K)."""
        rows = flat
        if rows.shape[0] < self.num_codes:
            repeats = -(-self.num_codes // rows.shape[0])
            noise = torch.randn(rows.shape[0] * repeats, self.dim, generator=generator, device="cpu")
            rows = rows.repeat(repeats, 1) + noise.to(rows.device) * (0.01 / self.dim ** 0.5)
        order = torch.randperm(rows.shape[0], generator=generator, device="cpu").to(rows.device)
        return rows[order[: self.num_codes]]
