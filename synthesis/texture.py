"""Hu et al. tumor texture, generated on demand for one tumor's box (no texture bank).

Reference (SyntheticTumors ``get_predefined_texture``, on a 420x300x320 bank at 1 mm):
  a ~ U(0,1) per voxel -> gaussian(sigma_a) -> min-max -> p = s*norm + base
  b = Bernoulli(p) ("salt") -> gaussian(sigma_b) -> beta = u0 / mean(b[b > 0.12]) -> clip(beta*b, 0, 1)

Both gaussian-smoothed fields are band-limited (sigma_a >= 3 mm, sigma_b >= 4 mm), so we draw
them on a coarse grid (cell = about sigma/2 voxels) and interpolate linearly to the voxels:
block sums of Bernoulli(p) voxels are Binomial(cells, p), and the Gaussian is applied at the
coarse scale with the block's own box-filter variance subtracted. A coarse noise margin
around the box makes the field inside the box (nearly) a cut-out of an infinite field.
With one voxel per cell (small sigma in voxels) this is exactly the reference process.

Min-max normalisation: the reference divides by the extremes of its whole 420x300x320 bank.
We standardise analytically and use the extremes measured on such banks: (max - mean)/std
and (mean - min)/std were 5.1-6.6 for sigma_a 3..15 (scipy gaussian_filter, seed 0), so the
normalised field is 0.5 + z / (2 * 6.0).

Gain: the reference computes beta = u0 / mean(b[b > 0.12]) once over its whole bank, then cuts a
tumor's block out of it, so a block's mean texture wanders with the bank's low frequencies
(tumor to tumor about +-0.04, +-4 HU of darkening). Normalising each tumor's own box would remove
that spread; we compute the bank's value instead, analytically: b is close to Gaussian, with mean
mu = scale / 2 + base and variance (salt noise + smoothed probability map, see
``bank_bright_mean``), which matched 128^3 reference banks to 0.3 % (sigma_a 3..15, sigma_b 4..7).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from synthesis import kernels
from synthesis.banded import Band, gaussian_band, lerp_band, separable_matmul

REFERENCE_Z_HALF_SPAN = 6.0
SALT_CELL_SIGMAS = 2.0  # salt field: coarse sigma >= about 2 cells so linear interpolation is smooth
# The probability map only modulates p by about +-0.03 (std 0.017), so 1-cell sigma is plenty.
PROBABILITY_CELL_SIGMAS = 1.0
# Noise margin around the box, in coarse sigmas (+1 cell). The tumor sits inside its blend box
# by the blur margin (>= 5 voxels), so this leaves >= 2 salt sigmas of real neighbours around
# every tumor voxel; reflection handles the rest (2.3 % of the kernel mass, folded back).
PAD_SIGMAS = 1.0
# Salt smoothing kernel radius in sigmas (scipy's default is 4; beyond 3 the kernel holds 0.3 %
# of its mass, and the salt grid is the texture's largest per-voxel cost).
SALT_TRUNCATE = 3.0
BETA_THRESHOLD = 0.12


@lru_cache(maxsize=1024)
def kernel_energy(sigma: float, truncate: float = 4.0) -> float:
    """Sum of squared weights of scipy's discrete Gaussian kernel (variance gain on white noise)."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1)
    g = np.exp(-0.5 * (x / max(sigma, 1e-6)) ** 2)
    g /= g.sum()
    return float((g**2).sum())


class _CoarseAxis:
    """Coarse grid along one axis covering fine coordinates [start, stop] plus a filter margin."""

    def __init__(self, start: float, stop: float, sigma_vox: float, cell_sigmas: float):
        self.factor = max(1, int(sigma_vox // cell_sigmas))
        # the block mean is itself a box filter of variance (f^2 - 1) / 12 fine voxels^2
        residual = sigma_vox**2 - (self.factor**2 - 1) / 12.0
        self.sigma = float(np.sqrt(max(residual, 0.25))) / self.factor
        self.pad = int(PAD_SIGMAS * self.sigma + 0.5) + 1
        self.origin = float(np.floor(start))
        self.size = self._size_to(stop)

    def _size_to(self, stop: float) -> int:
        return int(np.ceil((stop - self.origin + 1) / self.factor)) + 2 * self.pad

    def ending_at(self, stop: float) -> "_CoarseAxis":
        """The same grid (origin, cells, margin) covering fine coordinates up to ``stop``."""
        out = copy.copy(self)
        out.size = self._size_to(stop)
        return out

    def centres(self) -> np.ndarray:
        """Fine coordinates of the coarse cell centres."""
        cells = np.arange(self.size) - self.pad
        return self.origin + cells * self.factor + (self.factor - 1) / 2.0

    def interp_weights(self, fine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(left cell index, weight of the right cell) of linear interpolation at ``fine``."""
        u = (fine - self.origin - (self.factor - 1) / 2.0) / self.factor + self.pad
        u = np.clip(u, 0, self.size - 1.000001)
        left = np.floor(u).astype(np.intp)
        return left, (u - left).astype(np.float32)


@dataclass(frozen=True, eq=False)
class _AxisPlan:
    """Per axis of a texture box: the noise and salt grid sizes and their operators, each a
    Gaussian on its coarse grid then a linear interpolation (kept apart: composed, the band
    is as wide as the Gaussian in fine voxels, several times the work of the two)."""

    noise_size: int
    factor: int
    noise_smooth: Band  # white noise -> unit-variance smooth field on the noise grid
    noise_to_salt: Band  # ... interpolated at the salt cell centres
    salt_smooth: Band  # salt cell fractions -> smoothed on the salt grid
    salt_to_voxels: Band  # ... interpolated at the voxels


def _plan_from(salt: _CoarseAxis, noise: _CoarseAxis, noise_to_salt: Band, salt_to_voxels: Band) -> _AxisPlan:
    noise_sigma = round(noise.sigma, 9)
    # gaussian_field: unit-variance smoothing of white noise (divide by the kernel's energy)
    return _AxisPlan(
        noise.size, salt.factor, _unit_noise_band(noise.size, noise_sigma), noise_to_salt,
        gaussian_band(salt.size, salt.sigma, SALT_TRUNCATE), salt_to_voxels)


@lru_cache(maxsize=1024)
def _unit_noise_band(size: int, sigma: float) -> Band:
    return gaussian_band(size, sigma).scaled(1 / np.sqrt(kernel_energy(sigma)))


def _axis_plan_direct(n: int, sigma_a_vox: float, sigma_b_vox: float) -> _AxisPlan:
    """The operators of one axis of a texture box of n voxels, built from scratch."""
    salt = _CoarseAxis(0, n - 1, sigma_b_vox, SALT_CELL_SIGMAS)
    centres = salt.centres()
    noise = _CoarseAxis(centres.min(), centres.max(), sigma_a_vox, PROBABILITY_CELL_SIGMAS)
    return _plan_from(salt, noise, lerp_band(*noise.interp_weights(centres), noise.size),
                      lerp_band(*salt.interp_weights(np.arange(n, dtype=float)), salt.size))


TEMPLATE_VOXELS = 1024


@lru_cache(maxsize=256)
def _axis_template(sigma_a_vox: float, sigma_b_vox: float) -> tuple[_CoarseAxis, _CoarseAxis, Band, Band]:
    """The grids and interpolations of a TEMPLATE_VOXELS-long axis: a shorter axis's are their
    first rows (the grids start at the same place and nothing is clipped at their ends)."""
    salt = _CoarseAxis(0, TEMPLATE_VOXELS - 1, sigma_b_vox, SALT_CELL_SIGMAS)
    centres = salt.centres()
    noise = _CoarseAxis(centres.min(), centres.max(), sigma_a_vox, PROBABILITY_CELL_SIGMAS)
    return (salt, noise, lerp_band(*noise.interp_weights(centres), noise.size),
            lerp_band(*salt.interp_weights(np.arange(TEMPLATE_VOXELS, dtype=float)), salt.size))


@lru_cache(maxsize=4096)
def _axis_plan(n: int, sigma_a_vox: float, sigma_b_vox: float) -> _AxisPlan:
    """``_axis_plan_direct`` (tested equal), cut from a cached long axis: box sizes vary from
    tumor to tumor, and building the operators from scratch cost more than using them."""
    if n > TEMPLATE_VOXELS:
        return _axis_plan_direct(n, sigma_a_vox, sigma_b_vox)
    salt_t, noise_t, to_salt_t, to_voxels_t = _axis_template(sigma_a_vox, sigma_b_vox)
    salt = salt_t.ending_at(n - 1)
    noise = noise_t.ending_at(salt.centres()[-1])
    return _plan_from(salt, noise, to_salt_t.first_rows(salt.size, noise.size), to_voxels_t.first_rows(n, salt.size))


def texture_field(shape: Sequence[int], spacing: Sequence[float], sigma_a_mm: float, sigma_b_mm: float,
                  scale: float, base: float, u0: float, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """The smoothed salt field b of a box and the reference's gain beta = u0 / mean(b[b > 0.12]);
    the texture is ``clip(beta * b, 0, 1)`` (see ``hu_texture``; arguments as there)."""
    spacing = np.asarray(spacing, float)
    plans = [_axis_plan(int(n), round(sigma_a_mm / s, 9), round(sigma_b_mm / s, 9)) for n, s in zip(shape, spacing)]
    noise = rng.standard_normal(tuple(p.noise_size for p in plans), dtype=np.float32)
    z = separable_matmul(separable_matmul(noise, [p.noise_smooth for p in plans]), [p.noise_to_salt for p in plans])
    probability = scale * np.clip(0.5 + z / (2 * REFERENCE_Z_HALF_SPAN), 0.0, 1.0) + base
    cells = int(np.prod([p.factor for p in plans]))
    counts = kernels.binomial_inversion(rng.random(probability.size, dtype=np.float32), probability.ravel(), cells)
    salt = separable_matmul(counts.reshape(probability.shape).astype(np.float32) / np.float32(cells),
                            [p.salt_smooth for p in plans])
    b = separable_matmul(salt, [p.salt_to_voxels for p in plans])
    return b, u0 / bank_bright_mean(spacing, sigma_a_mm, sigma_b_mm, scale, base)


def bank_bright_mean(spacing: Sequence[float], sigma_a_mm: float, sigma_b_mm: float, scale: float,
                     base: float) -> float:
    """The reference's ``mean(b[b > 0.12])`` over a whole texture bank, for b Gaussian with mean
    mu = scale / 2 + base and variance = Bernoulli noise through the salt Gaussian (per-voxel
    variance times the kernel's energy) + the probability map's variance reduced by the salt
    smoothing (two Gaussians: (sa^2 / (sa^2 + sb^2))^1.5 in 3D)."""
    mu = scale * 0.5 + base
    var_p = (scale / (2 * REFERENCE_Z_HALF_SPAN)) ** 2
    energy = float(np.prod([kernel_energy(round(sigma_b_mm / s, 9)) for s in spacing]))
    smoothed_p = var_p * (sigma_a_mm ** 2 / (sigma_a_mm ** 2 + sigma_b_mm ** 2)) ** 1.5
    std = math.sqrt(max((mu * (1 - mu) - var_p) * energy + smoothed_p, 1e-12))
    alpha = (BETA_THRESHOLD - mu) / std
    tail = 0.5 * math.erfc(alpha / math.sqrt(2))  # P(b > threshold)
    return mu + std * math.exp(-0.5 * alpha ** 2) / math.sqrt(2 * math.pi) / max(tail, 1e-12)


STRIP_AREA_RATIO = 0.6  # a box joins a strip if its cross-section is >= this share of the strip's


def texture_strip(shapes: Sequence[Sequence[int]], spacing: Sequence[float], sigma_a_mm: float, sigma_b_mm: float,
                  scale: float, base: float, u0: float, rng: np.random.Generator) -> tuple[list[np.ndarray], float]:
    """``texture_field`` for several boxes at once: they are laid side by side along axis 0 of
    strips of boxes with similar cross-sections (little padding), so they get different parts
    of one texture process for the set-up cost of a few boxes; the gain is the bank's (one value
    for the tumor, as the reference normalises a whole texture array).

    Returns:
        (per box, a view of its strip's b field with that box's shape; the gain beta).
    """
    shapes = np.asarray(shapes, int).reshape(-1, 3)
    order = np.argsort(-(shapes[:, 1] * shapes[:, 2]), kind="stable")
    strips: list[list[int]] = []
    for index in order:
        area = shapes[index, 1] * shapes[index, 2]
        if not strips or area < STRIP_AREA_RATIO * shapes[strips[-1][0], 1] * shapes[strips[-1][0], 2]:
            strips.append([])
        strips[-1].append(int(index))
    fields: list = [None] * len(shapes)
    gain = None
    for members in strips:
        part = shapes[members]
        strip = (int(part[:, 0].sum()), int(part[:, 1].max()), int(part[:, 2].max()))
        b, gain = texture_field(strip, spacing, sigma_a_mm, sigma_b_mm, scale, base, u0, rng)
        starts = np.concatenate([[0], np.cumsum(part[:, 0])])
        for index, start, (n0, n1, n2) in zip(members, starts, part):
            fields[index] = b[start:start + n0, :n1, :n2]
    return fields, float(gain)


def hu_texture(shape: Sequence[int], spacing: Sequence[float], sigma_a_mm: float, sigma_b_mm: float,
               scale: float, base: float, u0: float, rng: np.random.Generator) -> np.ndarray:
    """Texture in [0, 1] (mean about u0) for a box of ``shape`` voxels.

    Args:
        shape: (3,) box shape in voxels.
        spacing: (3,) voxel size in mm (sigmas are physical, so the grain is spacing-independent).
        sigma_a_mm, sigma_b_mm: smoothing of the probability map and of the salt field.
        scale, base: p = scale * normalised + base.
        u0: target mean of the texture.
        rng: randomness.

    Returns:
        float32 array of ``shape``.
    """
    b, gain = texture_field(shape, spacing, sigma_a_mm, sigma_b_mm, scale, base, u0, rng)
    b *= np.float32(gain)
    return np.clip(b, 0.0, 1.0, out=b)
