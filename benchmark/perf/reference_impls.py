"""Straightforward implementations of the reference (SyntheticTumors) Hu synthesis steps, on whole
arrays: the naive perf baseline (``tumorbench perf hu``) and the tests compare the fast paths in
``synthesis/`` with them. Not used to synthesize."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

from synthesis.elastic import DEFORM_PLANES
from synthesis.texture import BETA_THRESHOLD, REFERENCE_Z_HALF_SPAN


def reference_texture(shape: Sequence[int], sigma_a: float, sigma_b: float, scale: float, base: float,
                      u0: float, rng: np.random.Generator, bank_normalised: bool = False) -> np.ndarray:
    """The reference texture process voxel by voxel on the whole array (sigmas in voxels).

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


def deform_volume_reference(volume: np.ndarray, fields: list[np.ndarray]) -> np.ndarray:
    """Three sequential order-0 resamplings of a whole canvas (``elastic.DEFORM_PLANES`` order), as
    elasticdeform applies them: the composed fast path must give the same voxels."""
    out = volume
    for field, (a, b) in zip(fields, DEFORM_PLANES):
        grid = list(np.meshgrid(*[np.arange(n) for n in out.shape], indexing="ij"))
        expand = [slice(None)] * 3
        other = 3 - a - b
        expand[other] = None
        grid[a] = grid[a] + field[0][tuple(expand)]
        grid[b] = grid[b] + field[1][tuple(expand)]
        out = ndimage.map_coordinates(out.astype(np.float32), [np.rint(g) for g in grid],
                                      order=0, mode="constant", cval=0.0) > 0.5
    return out


class _WholeCrop:
    """A generator's ``__call__`` as it was before box-local synthesis (issue 30): per crop, the
    tumor drawn on a whole-crop copy, the crops stacked. The in-run baseline of
    `tumorbench perf data --regime hu|cellular`; same draws, same output as the generator."""

    def __init__(self, generator):
        self.generator, self.name, self.organ, self.device = generator, generator.name, generator.organ, "cpu"

    def warm_up(self) -> None:
        self.generator.warm_up()

    def __call__(self, ct_hu, organ_mask, spacing, rng, **kwargs):
        from synthesis.protocol import SynthesisOutput

        results = [self._one(np.asarray(c, np.float32), o, spacing, rng) for c, o in zip(ct_hu, organ_mask)]
        return SynthesisOutput(ct_hu=np.stack([r[0] for r in results]), tumor_mask=np.stack([r[1] for r in results]),
                               params=tuple(r[2] for r in results))


class WholeCropHu(_WholeCrop):
    def _one(self, ct, organ, spacing, rng):
        from synthesis.geometry import prepare_organ
        from synthesis.hu import synthesize

        organ = prepare_organ(organ)
        for _ in range(self.generator.MAX_EMPTY_RETRIES):
            params = self.generator.sample(organ, spacing, rng)
            out, mask = synthesize(ct, organ, params)
            if mask.any():
                return out, mask, {"method": self.name, **params.to_dict()}
        raise RuntimeError("no tumor voxel")


class WholeCropCellular(_WholeCrop):
    def _one(self, ct, organ, spacing, rng):
        from synthesis.cellular.generator import _with_tumor, sample

        gen = self.generator
        organ = np.asarray(organ, bool)
        params, seeded = sample(ct, organ, spacing, rng, organ_name=gen.organ, variant=gen.variant,
                                size_probs=gen.size_probs)
        return (*_with_tumor(ct, organ, params, seeded), params.to_dict())


WHOLE_CROP_BASELINES = {"hu": WholeCropHu, "cellular": WholeCropCellular}
