"""Batched latent-diffusion inpainting of tumors into CT crops (diffusers-style pipeline).

``DiffTumorPipeline(autoencoder, denoiser, scheduler)`` keeps the three parts separate; one call
inpaints B crops in one batch: encode the masked crop, denoise the latent conditioned on it and
the mask, decode (snapped to the codebook), and blend the decoded crop back through a Gaussian-
blurred mask (sigma ~ U(0, 4) voxels) for every organ. The official pancreas code instead replaces
the whole crop by the autoencoder output, which leaks autoencoder texture; we do not copy that.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from scipy import ndimage

from synthesis.difftumor.autoencoder import VQAutoencoder, hu_to_unit, unit_to_hu
from synthesis.difftumor.denoiser import condition, denoise_step_input
from synthesis.errors import SynthesisInputError


class DiffTumorPipeline:
    """Inpaint tumors into (B, X, Y, Z) HU crops whose sides are multiples of the autoencoder's
    downsampling (the model crop size the denoiser was trained on, e.g. 96^3 or 32^3).

    Args:
        autoencoder: trained ``VQAutoencoder``.
        denoiser: epsilon-predicting U-Net (17 -> 8 channels).
        scheduler: MONAI DDPM/DDIM scheduler with ``set_timesteps`` already called.
        blur_sigma_range: (low, high) voxels of the blend mask's Gaussian blur, drawn per crop.
        eta: DDIM eta (0 = deterministic DDIM as official); ignored by DDPM.
    """

    def __init__(self, autoencoder: VQAutoencoder, denoiser: torch.nn.Module, scheduler, *,
                 blur_sigma_range: tuple[float, float] = (0.0, 4.0), eta: float = 0.0) -> None:
        self.autoencoder, self.denoiser, self.scheduler = autoencoder.eval(), denoiser.eval(), scheduler
        self.blur_sigma_range, self.eta = blur_sigma_range, eta
        self.window = autoencoder.config.hu_window

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    @torch.no_grad()
    def __call__(self, ct_crop_hu: np.ndarray, organ_mask: np.ndarray, tumor_mask: np.ndarray,
                 generator: torch.Generator | Sequence[torch.Generator],
                 blur_sigmas: Sequence[float] | None = None) -> np.ndarray:
        """Returns (B, X, Y, Z) float32 HU: the crops with generated tumors blended in.

        Args:
            ct_crop_hu: (B, X, Y, Z) CT in HU (any range; voxels the blend mask does not reach are
                returned unchanged).
            organ_mask: (B, X, Y, Z) bool organ masks; only checked here.
            tumor_mask: (B, X, Y, Z) bool masks of the tumors to generate.
            generator: torch Generator on the pipeline's device (noise and blur sigmas), or one per
                crop: crop b's noise then comes from generator b only, so it does not depend on the
                batch it is generated in (replay).
            blur_sigmas: optional per-crop blur sigmas (voxels; a number or one per axis) instead of
                drawing them.
        """
        ct = np.asarray(ct_crop_hu, dtype=np.float32)
        masks = np.asarray(tumor_mask, dtype=bool)
        self._check(ct, np.asarray(organ_mask), masks)
        generators = _per_crop(generator, len(ct))
        decoded = self.generate(ct, masks, generators)
        if blur_sigmas is None:
            low, high = self.blur_sigma_range
            draws = np.asarray([torch.rand(1, generator=g, device=g.device).item() for g in generators])
            blur_sigmas = low + (high - low) * draws
        return np.stack([blend(c, d, m, s) for c, d, m, s in zip(ct, decoded, masks, blur_sigmas)])

    @torch.no_grad()
    def generate(self, ct: np.ndarray, masks: np.ndarray,
                 generator: torch.Generator | Sequence[torch.Generator]) -> np.ndarray:
        """Decoded crops (B, X, Y, Z) in HU from the reverse diffusion (before blending)."""
        device = self.device
        generators = _per_crop(generator, len(ct))
        image = torch.from_numpy(hu_to_unit(ct, self.window)[:, None]).to(device)
        mask = torch.from_numpy(masks[:, None].astype(np.float32)).to(device)
        cond = condition(self.autoencoder, image, mask)
        shape = (1, self.autoencoder.config.latent_channels, *cond.shape[2:])
        latent = torch.cat([torch.randn(shape, generator=g, device=g.device) for g in generators]).to(device)
        for t in self.scheduler.timesteps:
            timesteps = torch.full((len(ct),), int(t), device=device, dtype=torch.long)
            noise = self.denoiser(denoise_step_input(latent, cond), timesteps=timesteps)
            # one step per crop with its own generator (the step is elementwise: same numbers)
            latent = torch.cat([self._step(noise[b:b + 1], int(t), latent[b:b + 1], g)
                                for b, g in enumerate(generators)])
        image_out = self.autoencoder.decode(self.autoencoder.denormalize_latent(latent), quantize=True)
        return unit_to_hu(image_out.clamp(-1.0, 1.0), self.window)[:, 0].float().cpu().numpy()

    def _step(self, noise: torch.Tensor, t: int, latent: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if hasattr(self.scheduler, "steps_offset"):  # DDIM
            return self.scheduler.step(noise, t, latent, eta=self.eta, generator=generator)[0]
        return self.scheduler.step(noise, t, latent, generator=generator)[0]

    def _check(self, ct: np.ndarray, organ: np.ndarray, masks: np.ndarray) -> None:
        factor = self.autoencoder.config.downsampling
        if ct.ndim != 4 or organ.shape != ct.shape or masks.shape != ct.shape:
            raise SynthesisInputError(f"DiffTumor pipeline: expected (B, X, Y, Z) CT, organ and tumor masks of one "
                                      f"shape, got {ct.shape}, {organ.shape}, {masks.shape}")
        if any(side % factor for side in ct.shape[1:]):
            raise SynthesisInputError(f"DiffTumor pipeline: crop shape {ct.shape[1:]} must be a multiple of {factor}")


def _per_crop(generator: torch.Generator | Sequence[torch.Generator], count: int) -> list[torch.Generator]:
    """One generator per crop (a single one is shared, in batch order)."""
    if isinstance(generator, torch.Generator):
        return [generator] * count
    generators = list(generator)
    if len(generators) != count:
        raise SynthesisInputError(f"DiffTumor pipeline: {len(generators)} generators for {count} crops")
    return generators


def blend(original_hu: np.ndarray, decoded_hu: np.ndarray, mask: np.ndarray,
          sigma: float | Sequence[float]) -> np.ndarray:
    """(1 - m~) * original + m~ * decoded with m~ the mask blurred by ``sigma`` voxels (one per axis
    or shared; scipy truncates at 4 sigma, so voxels farther than ceil(4 sigma) from the mask stay
    exactly original)."""
    weight = mask.astype(np.float32)
    sigmas = np.broadcast_to(np.asarray(sigma, float), (mask.ndim,))
    if sigmas.max() > 1e-3:
        weight = ndimage.gaussian_filter(weight, sigma=tuple(float(s) for s in sigmas), truncate=4.0)
    out = original_hu.astype(np.float32).copy()
    touched = weight > 0
    out[touched] = (1.0 - weight[touched]) * out[touched] + weight[touched] * decoded_hu[touched]
    return out
