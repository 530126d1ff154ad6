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


class FortranCropVolume:
    """A cached ``Volume`` whose ``ct_crop`` is the pre-issue-30 one: the float32 crop keeps the
    cache's Fortran order (``plan_batch`` then reorders it while stacking)."""

    def __init__(self, volume):
        self._volume = volume

    def __getattr__(self, name):
        return getattr(self._volume, name)

    def ct_crop(self, start, crop):
        from models.volumes import AIR_HU

        return self._volume._read(self._volume.ct_hu, start, crop, AIR_HU).astype(np.float32)


def finish_batch_whole_crop(plan, cfg, generator, rng) -> dict:
    """``models.data.finish_batch`` before issue 30: the generator's full crops are copied in."""
    import torch

    from models.data import _apply
    from monai.transforms import ShiftIntensity

    ct, label = plan.ct_hu.copy(), plan.label.copy()
    n_synth = int(plan.synth.sum())
    if n_synth:
        out = generator(ct[plan.synth], label[plan.synth] >= 1, cfg.spacing, rng)
        ct[plan.synth] = out.ct_hu
        sub = label[plan.synth]
        sub[np.asarray(out.tumor_mask, dtype=bool)] = 2
        label[plan.synth] = sub
    low, high = cfg.window
    image = np.clip((ct - low) / (high - low), 0.0, 1.0)
    for i in np.flatnonzero(plan.shift):
        image[i] = _apply(ShiftIntensity(float(plan.shift[i])), image[i])
    return {"image": torch.from_numpy(image.astype(np.float32)[:, None]),
            "label": torch.from_numpy(label.astype(np.int64)[:, None]), "n_synth": n_synth,
            "case_ids": list(plan.case_ids)}


def whole_crop_batches(volumes, cfg, first_epoch, last_epoch, n_batches, generator):
    """``models.data.RunBatches`` (in-worker synthesis) with the pre-issue-30 crop and finish steps."""
    from models.config import STREAM_DATA, STREAM_SYNTHESIS, child_rng
    from models.data import RunBatches, plan_batch

    class _Batches(RunBatches):
        def __getitem__(self, index):
            epoch, b = self.first_epoch + index // self.n_batches, index % self.n_batches
            indices = self.order(epoch)[b * cfg.batch_size: (b + 1) * cfg.batch_size]
            plan = plan_batch(self.volumes, indices, cfg, self.generator is not None,
                              child_rng(cfg.seed, STREAM_DATA, epoch, b))
            return epoch, b, finish_batch_whole_crop(plan, cfg, self.generator,
                                                     child_rng(cfg.seed, STREAM_SYNTHESIS, epoch, b))

    return _Batches([FortranCropVolume(v) for v in volumes], cfg, first_epoch, last_epoch, n_batches, generator, True)
