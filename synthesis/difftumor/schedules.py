"""The official DiffTumor noise schedules and samplers (ancestral DDPM and DDIM), our code.

Facts (``shared/reference/difftumor_official/README.md`` §5.9-10): cosine schedule with s = 0.008
(Nichol & Dhariwal) computed in float64, betas clipped at 0.9999 (MONAI clips at 0.999, which
ends the T=4 schedule at alpha_bar = 1.4e-4 instead of 1.44e-5), stored as float32. The early
model (T=4) samples by ancestral DDPM over all steps with x0 clamped to [-1, 1]; the non-early
model (T=200) by DDIM-50, eta 0, on the timesteps 1, 5, ..., 197 (uniform spacing T/S plus one),
with no x0 clipping, the last step going to alpha_bar[0].

Both schedulers keep the interface the pipeline and the training loop use (``timesteps``,
``num_train_timesteps``, ``add_noise``, ``step(...)[0]``), so they replace MONAI's one to one.
"""
from __future__ import annotations

import math

import torch

BETA_MAX = 0.9999
COSINE_OFFSET = 0.008


def cosine_betas(timesteps: int, s: float = COSINE_OFFSET, beta_max: float = BETA_MAX) -> torch.Tensor:
    """float64 betas of the cosine schedule, clipped to [0, beta_max]."""
    x = torch.linspace(0, timesteps, timesteps + 1, dtype=torch.float64)
    alpha_bar = torch.cos(((x / timesteps) + s) / (1 + s) * math.pi * 0.5) ** 2
    alpha_bar = alpha_bar / alpha_bar[0]
    return torch.clip(1 - alpha_bar[1:] / alpha_bar[:-1], 0, beta_max)


def schedule_buffers(timesteps: int) -> dict[str, torch.Tensor]:
    """The 12 float32 [T] buffers of the official diffusion wrapper (same names), from float64."""
    betas = cosine_betas(timesteps)
    alphas = 1.0 - betas
    alpha_bar = torch.cumprod(alphas, 0)
    alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
    posterior_variance = betas * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar)
    buffers = {
        "betas": betas,
        "alphas_cumprod": alpha_bar,
        "alphas_cumprod_prev": alpha_bar_prev,
        "sqrt_alphas_cumprod": alpha_bar.sqrt(),
        "sqrt_one_minus_alphas_cumprod": (1.0 - alpha_bar).sqrt(),
        "log_one_minus_alphas_cumprod": torch.log(1.0 - alpha_bar),
        "sqrt_recip_alphas_cumprod": (1.0 / alpha_bar).sqrt(),
        "sqrt_recipm1_alphas_cumprod": (1.0 / alpha_bar - 1).sqrt(),
        "posterior_variance": posterior_variance,
        # the variance is 0 at t=0; the official code clips the log there
        "posterior_log_variance_clipped": torch.log(posterior_variance.clamp(min=1e-20)),
        "posterior_mean_coef1": betas * alpha_bar_prev.sqrt() / (1.0 - alpha_bar),
        "posterior_mean_coef2": (1.0 - alpha_bar_prev) * alphas.sqrt() / (1.0 - alpha_bar),
    }
    return {name: value.to(torch.float32) for name, value in buffers.items()}


def ddim_timesteps(train_timesteps: int, sample_steps: int) -> torch.Tensor:
    """Official DDIM step indices, ascending: uniform spacing T // S, offset by one (1, 5, ..., 197)."""
    if not 0 < sample_steps <= train_timesteps:
        raise ValueError(f"DDIM steps {sample_steps}: expected 1..{train_timesteps}")
    return torch.arange(0, train_timesteps, train_timesteps // sample_steps, dtype=torch.int64) + 1


def _gather(values: torch.Tensor, t: torch.Tensor | int, like: torch.Tensor) -> torch.Tensor:
    """values[t] shaped to broadcast over (B, C, ...) ``like`` (t scalar or per-sample)."""
    t = torch.as_tensor(t, device=values.device).reshape(-1)
    picked = values[t].to(like.device, like.dtype)
    return picked.reshape(-1, *([1] * (like.dim() - 1)))


def _noise_like(sample: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else sample.device
    return torch.randn(sample.shape, generator=generator, device=device, dtype=sample.dtype).to(sample.device)


class _Schedule:
    """Shared part: buffers for T steps and the forward (noising) process."""

    def __init__(self, train_timesteps: int) -> None:
        self.num_train_timesteps = int(train_timesteps)
        self.buffers = schedule_buffers(self.num_train_timesteps)

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        return self.buffers["alphas_cumprod"]

    def add_noise(self, original: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """q(x_t | x_0) sample: sqrt(a_t) x0 + sqrt(1 - a_t) noise."""
        return (_gather(self.buffers["sqrt_alphas_cumprod"], timesteps, original) * original
                + _gather(self.buffers["sqrt_one_minus_alphas_cumprod"], timesteps, original) * noise)


class OfficialDDPM(_Schedule):
    """Ancestral DDPM over every step T-1 ... 0, predicted x0 clamped to [-1, 1]."""

    def __init__(self, train_timesteps: int, sample_steps: int | None = None) -> None:
        super().__init__(train_timesteps)
        if sample_steps not in (None, train_timesteps):
            raise ValueError(f"DDPM samples every step: sample_steps {sample_steps} != T {train_timesteps}")
        self.timesteps = torch.arange(self.num_train_timesteps - 1, -1, -1)

    def step(self, model_output: torch.Tensor, timestep: int, sample: torch.Tensor,
             generator: torch.Generator | None = None, noise: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_{t-1}, clamped x0) from the predicted noise at integer step ``timestep``."""
        t, b = int(timestep), self.buffers
        x0 = (_gather(b["sqrt_recip_alphas_cumprod"], t, sample) * sample
              - _gather(b["sqrt_recipm1_alphas_cumprod"], t, sample) * model_output).clamp(-1.0, 1.0)
        mean = _gather(b["posterior_mean_coef1"], t, sample) * x0 + _gather(b["posterior_mean_coef2"], t, sample) * sample
        if t == 0:  # no noise on the last step (the official code draws it and multiplies by 0)
            return mean, x0
        noise = _noise_like(sample, generator) if noise is None else noise
        std = torch.exp(0.5 * _gather(b["posterior_log_variance_clipped"], t, sample))
        return mean + std * noise, x0


class OfficialDDIM(_Schedule):
    """DDIM on the official timesteps; eta 0 is deterministic, no x0 clipping (as official)."""

    steps_offset = 1  # the pipeline passes eta to schedulers with this attribute

    def __init__(self, train_timesteps: int, sample_steps: int) -> None:
        super().__init__(train_timesteps)
        self.timesteps = ddim_timesteps(self.num_train_timesteps, sample_steps).flip(0)
        ascending = self.timesteps.flip(0)
        self.ddim_alphas = self.alphas_cumprod[ascending]
        self.ddim_alphas_prev = torch.cat([self.alphas_cumprod[:1], self.ddim_alphas[:-1]])
        self._index = {int(t): i for i, t in enumerate(ascending)}

    def step(self, model_output: torch.Tensor, timestep: int, sample: torch.Tensor, eta: float = 0.0,
             generator: torch.Generator | None = None, noise: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_prev, predicted x0) for the DDIM step at ``timestep`` (one of ``self.timesteps``)."""
        if int(timestep) not in self._index:
            raise ValueError(f"timestep {int(timestep)} is not a DDIM step of this schedule")
        i = self._index[int(timestep)]
        a_t = self.ddim_alphas[i].to(sample.device, sample.dtype)
        a_prev = self.ddim_alphas_prev[i].to(sample.device, sample.dtype)
        sigma = eta * torch.sqrt((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
        x0 = (sample - torch.sqrt(1 - a_t) * model_output) / torch.sqrt(a_t)
        x_prev = torch.sqrt(a_prev) * x0 + torch.sqrt(1 - a_prev - sigma ** 2) * model_output
        if eta > 0:
            x_prev = x_prev + sigma * (_noise_like(sample, generator) if noise is None else noise)
        return x_prev, x0
