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
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np
from scipy import ndimage

REFERENCE_Z_HALF_SPAN = 6.0
SALT_CELL_SIGMAS = 2.0  # salt field: coarse sigma >= about 2 cells so linear interpolation is smooth
# The probability map only modulates p by about +-0.03 (std 0.017), so 1-cell sigma is plenty.
PROBABILITY_CELL_SIGMAS = 1.0
# Noise margin around the box, in coarse sigmas. The tumor sits inside its blend box by the
# blur margin (4 edge sigmas), so 2 texture sigmas here leave >= 3 sigmas of real neighbours
# around every tumor voxel (kernel mass beyond 3 sigma: 0.3 %); scipy's reflect handles the rest.
PAD_SIGMAS = 2.0
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
        self.size = int(np.ceil((stop - self.origin + 1) / self.factor)) + 2 * self.pad

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


def separable_matmul(field: np.ndarray, matrices: Sequence[np.ndarray | None]) -> np.ndarray:
    """Apply one (n_out, n_in) matrix per axis of a 3D array (None skips an axis).

    Separable linear maps (Gaussian filters, interpolation) as BLAS products: for the short
    axes of a tumor box this is several times faster than per-tap filtering.
    """
    m0, m1, m2 = matrices
    if m0 is not None:
        field = (m0 @ field.reshape(field.shape[0], -1)).reshape((m0.shape[0],) + field.shape[1:])
    if m1 is not None:
        field = np.matmul(m1, field)
    if m2 is not None:
        field = field @ m2.T
    return field


@lru_cache(maxsize=256)
def _gaussian_matrix_cached(n: int, sigma: float, truncate: float) -> np.ndarray:
    radius = int(truncate * sigma + 0.5)
    taps = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (taps / sigma) ** 2)
    weights /= weights.sum()
    src = (np.arange(n)[:, None] + taps[None, :]) % (2 * n)  # scipy "reflect": d c b a | a b c d | d c b a
    src = np.where(src >= n, 2 * n - 1 - src, src)
    out = np.zeros((n, n), np.float64)
    np.add.at(out, (np.repeat(np.arange(n), len(taps)), src.ravel()), np.tile(weights, n))
    out = out.astype(np.float32)
    out.flags.writeable = False
    return out


def gaussian_matrix(n: int, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """(n, n) float32 matrix of scipy's gaussian_filter1d (mode reflect) on length-n lines."""
    return _gaussian_matrix_cached(int(n), round(float(sigma), 9), float(truncate))


def gaussian_filter_matmul(field: np.ndarray, sigmas: Sequence[float]) -> np.ndarray:
    """Same values as ``ndimage.gaussian_filter(field, sigmas)`` (reflect), as matrix products."""
    return separable_matmul(field, [gaussian_matrix(n, s) for n, s in zip(field.shape, sigmas)])


def lerp_matrix(left: np.ndarray, weight: np.ndarray, size: int) -> np.ndarray:
    """(len(left), size) float32 linear-interpolation matrix from (left index, right weight)."""
    out = np.zeros((len(left), size), np.float32)
    rows = np.arange(len(left))
    out[rows, left] = 1 - weight
    out[rows, left + 1] += weight
    return out


def _separable_lerp(field: np.ndarray, weights: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Linear interpolation from the coarse grid, one axis at a time."""
    return separable_matmul(field, [lerp_matrix(left, w, n) for (left, w), n in zip(weights, field.shape)])


def gaussian_field(coords: Sequence[np.ndarray], sigma_vox: Sequence[float], rng: np.random.Generator) -> np.ndarray:
    """Standardised (mean 0, std 1) Gaussian-smoothed white noise at a grid of fine coordinates.

    Args:
        coords: per axis, 1D fine-voxel coordinates (may be fractional) of the output grid.
        sigma_vox: (3,) smoothing sigma per axis in voxels.
        rng: randomness.

    Returns:
        float32 array (len(coords[0]), len(coords[1]), len(coords[2])).
    """
    axes = [_CoarseAxis(c.min(), c.max(), s, PROBABILITY_CELL_SIGMAS) for c, s in zip(coords, sigma_vox)]
    noise = rng.standard_normal(tuple(a.size for a in axes)).astype(np.float32)
    smooth = gaussian_filter_matmul(noise, [a.sigma for a in axes])
    smooth /= np.sqrt(np.prod([kernel_energy(round(a.sigma, 9)) for a in axes]))
    return _separable_lerp(smooth, [a.interp_weights(c) for a, c in zip(axes, coords)])


def binomial_by_inversion(rng: np.random.Generator, n: int, p: np.ndarray) -> np.ndarray:
    """Exact Binomial(n, p) draws (p an array) by CDF inversion of one uniform per cell.

    numpy's per-element binomial costs ~0.4 us per draw; for n <= ~100 and p ~ 0.15 the
    vectorised inversion loops ~n*p + 5 sd times over the array and is several times faster.
    """
    u = rng.random(p.shape)
    q = 1.0 - p
    pmf = q**n
    cdf = pmf.copy()
    ratio = p / q
    count = np.zeros(p.shape, np.int32)
    for k in range(n):
        above = u > cdf  # X = #{k : CDF(k) < u}
        if not above.any():
            break
        count += above
        pmf *= ratio * ((n - k) / (k + 1))
        cdf += pmf
    return count


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
    spacing = np.asarray(spacing, float)
    sigma_b = sigma_b_mm / spacing
    axes = [_CoarseAxis(0, n - 1, s, SALT_CELL_SIGMAS) for n, s in zip(shape, sigma_b)]
    z = gaussian_field([a.centres() for a in axes], sigma_a_mm / spacing, rng)
    probability = scale * np.clip(0.5 + z / (2 * REFERENCE_Z_HALF_SPAN), 0.0, 1.0) + base
    cells = int(np.prod([a.factor for a in axes]))
    salt = binomial_by_inversion(rng, cells, probability).astype(np.float32) / cells
    salt = gaussian_filter_matmul(salt, [a.sigma for a in axes])
    b = _separable_lerp(salt, [a.interp_weights(np.arange(n, dtype=float)) for a, n in zip(axes, shape)])
    bright = b[b > BETA_THRESHOLD]
    beta = u0 / float(bright.mean() if bright.size else max(b.mean(), 1e-6))
    return np.clip(beta * b, 0.0, 1.0, out=b)


def reference_texture(shape: Sequence[int], sigma_a: float, sigma_b: float, scale: float, base: float,
                      u0: float, rng: np.random.Generator, bank_normalised: bool = False) -> np.ndarray:
    """The reference process voxel by voxel on the whole array (sigmas in voxels); used by tests
    and the naive perf baseline.

    ``bank_normalised``: replace the min-max over this array by the bank's span
    (0.5 + z / (2 * REFERENCE_Z_HALF_SPAN)), which is what a small cut-out of the reference's
    420x300x320 bank sees; min-max over a small array exaggerates the contrast for large sigma_a.
    """
    a = ndimage.gaussian_filter(rng.random(tuple(shape)), sigma_a)
    if bank_normalised:
        norm = np.clip(0.5 + (a - a.mean()) / a.std() / (2 * REFERENCE_Z_HALF_SPAN), 0, 1)
    else:
        norm = (a - a.min()) / (a.max() - a.min())
    a = scale * norm + base
    b = ndimage.gaussian_filter((a > rng.random(a.shape)).astype(float), sigma_b)
    beta = u0 / b[b > BETA_THRESHOLD].mean()
    return np.clip(beta * b, 0, 1)
