"""``DiffTumorGenerator``: the TumorGenerator that inpaints tumors with the trained diffusion models.

Per crop: draw a size type (tiny/small -> early model, medium/large -> non-early model) and a mask
from the shared geometry module, take a model-sized window around the mask (edge-padded when the
crop is smaller), inpaint all windows of one stage in batched pipeline calls, paste them back.
Tumor parts outside the window (large tumors wider than the model crop) are not generated and are
dropped from the returned mask.
"""
from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from synthesis import geometry
from synthesis.difftumor.checkpoint import load_autoencoder, load_diffusion
from synthesis.difftumor.denoiser import build_scheduler
from synthesis.difftumor.pipeline import DiffTumorPipeline
from synthesis.errors import SynthesisInputError
from synthesis.protocol import SynthesisOutput

SIZE_STAGE = {"tiny": "early", "small": "early", "medium": "nonearly", "large": "nonearly"}


class DiffTumorGenerator:
    """Generative tumor synthesis (DiffTumor) on batches of HU crops.

    Args:
        organ: liver | pancreas | kidney (mask geometry variant and, by default, model weights).
        device: torch device of the models.
        checkpoint: folder with autoencoder.pt/.json and diffusion_<organ>_<stage>.pt/.json.
        size_probs: probabilities of tiny/small/medium/large (default: the geometry module's).
        model_organ: use another organ's diffusion weights (the paper's cross-organ runs).
        blur_sigma_range: blend-mask blur range in voxels (official U(0, 4)).
        max_batch: most crops per denoiser forward pass.
    """

    name = "difftumor"

    def __init__(self, organ: str, *, device: str | torch.device = "cpu", checkpoint: str | Path | None = None,
                 size_probs: Mapping[str, float] | None = None, model_organ: str | None = None,
                 blur_sigma_range: tuple[float, float] = (0.0, 4.0), max_batch: int = 8,
                 pipelines: Mapping[str, DiffTumorPipeline] | None = None,
                 crop_size: Sequence[int] | None = None) -> None:
        self.organ, self.device = organ, torch.device(device)
        self.size_probs = dict(size_probs) if size_probs is not None else None
        self.blur_sigma_range, self.max_batch = blur_sigma_range, max_batch
        needed = self._needed_stages()
        if pipelines is None:
            if checkpoint is None:
                raise SynthesisInputError(
                    "DiffTumor needs trained weights: pass checkpoint=DIR (train them with `tumorbench generator "
                    "train-autoencoder` and `train-diffusion`, or `benchmark.generators.train_tiny_generators`)")
            pipelines, crop_size, self.train_spacing = _load_pipelines(
                Path(checkpoint), model_organ or organ, needed, self.device, blur_sigma_range)
        else:
            self.train_spacing = None
        missing = sorted(needed - set(pipelines))
        if missing or crop_size is None:
            raise SynthesisInputError(f"DiffTumor generator: pipelines for {missing or needed} and a crop_size needed")
        self.pipelines, self.crop_size = dict(pipelines), tuple(int(c) for c in crop_size)

    def _needed_stages(self) -> set[str]:
        probs = geometry.normalise_size_probs(self.size_probs)
        return {SIZE_STAGE[size] for size, p in probs.items() if p > 0}

    def __call__(self, ct_hu: np.ndarray, organ_mask: np.ndarray, spacing: Sequence[float],
                 rng: np.random.Generator) -> SynthesisOutput:
        """Add one tumor per crop. ct_hu, organ_mask: (B, X, Y, Z); returns HU crops + tumor masks."""
        ct = np.asarray(ct_hu, dtype=np.float32)
        organs = np.asarray(organ_mask, dtype=bool)
        if ct.ndim != 4 or organs.shape != ct.shape:
            raise SynthesisInputError(f"difftumor: expected (B, X, Y, Z) ct_hu and organ_mask of one shape, "
                                      f"got {ct.shape} and {organs.shape}")
        self._warn_spacing(spacing)
        plans = [self._plan(organs[b], spacing, rng) for b in range(len(ct))]
        seed = int(rng.integers(2 ** 62))
        out_ct, out_mask = ct.copy(), np.zeros(ct.shape, dtype=bool)
        for stage, pipeline in self.pipelines.items():
            todo = [b for b, plan in enumerate(plans) if plan["stage"] == stage and plan["mask"].any()]
            generator = torch.Generator(device=self.device).manual_seed(seed + len(stage))
            for start in range(0, len(todo), self.max_batch):
                self._run(pipeline, todo[start:start + self.max_batch], plans, ct, organs, out_ct, out_mask, generator)
        params = tuple(_params(plan, seed) for plan in plans)
        return SynthesisOutput(ct_hu=out_ct, tumor_mask=out_mask, params=params)

    def _plan(self, organ: np.ndarray, spacing: Sequence[float], rng: np.random.Generator) -> dict[str, Any]:
        size_type, geom = geometry.sample_with_size_fallback(
            rng, self.size_probs, lambda size: geometry.sample_geometry(organ, spacing, size, self.organ, rng))
        mask = np.asarray(geometry.render_tumor_mask(organ, spacing, geom), dtype=bool)
        low, high = self.blur_sigma_range
        return {"size_type": size_type, "stage": SIZE_STAGE[size_type], "geometry": geom, "mask": mask,
                "window": window_start(mask, self.crop_size), "blur_sigma": float(rng.uniform(low, high))}

    def _run(self, pipeline, batch, plans, ct, organs, out_ct, out_mask, generator) -> None:
        windows = [plans[b]["window"] for b in batch]
        ct_w = np.stack([take_window(ct[b], w, self.crop_size) for b, w in zip(batch, windows)])
        organ_w = np.stack([take_window(organs[b], w, self.crop_size) for b, w in zip(batch, windows)])
        mask_w = np.stack([take_window(plans[b]["mask"], w, self.crop_size) for b, w in zip(batch, windows)])
        sigmas = [plans[b]["blur_sigma"] for b in batch]
        result = pipeline(ct_w, organ_w, mask_w, generator, blur_sigmas=sigmas)
        for index, (b, start) in enumerate(zip(batch, windows)):
            put_window(out_ct[b], start, result[index])
            put_window(out_mask[b], start, mask_w[index])

    def _warn_spacing(self, spacing: Sequence[float]) -> None:
        if self.train_spacing and not np.allclose(spacing, self.train_spacing, rtol=0.1):
            warnings.warn(f"difftumor: crops at spacing {tuple(spacing)} mm, models trained at "
                          f"{tuple(self.train_spacing)} mm; textures will be mis-scaled", stacklevel=3)


def window_start(mask: np.ndarray, size: Sequence[int]) -> tuple[int, ...]:
    """Start voxel of the ``size`` window centred on the mask's bounding box, kept inside the
    volume where it fits (negative where the volume is smaller: that part is padded)."""
    coords = np.argwhere(mask)
    center = (coords.min(0) + coords.max(0) + 1) // 2 if len(coords) else np.array(mask.shape) // 2
    starts = []
    for c, s, extent in zip(center, size, mask.shape):
        start = int(c) - s // 2
        starts.append(min(max(start, 0), extent - s) if extent >= s else (extent - s) // 2)
    return tuple(starts)


def _window_slices(start: Sequence[int], size: Sequence[int], shape: Sequence[int]):
    src = tuple(slice(max(b, 0), min(b + s, n)) for b, s, n in zip(start, size, shape))
    dst = tuple(slice(sl.start - b, sl.stop - b) for sl, b in zip(src, start))
    return src, dst


def take_window(array: np.ndarray, start: Sequence[int], size: Sequence[int]) -> np.ndarray:
    """``size`` window at ``start``; outside the array edge values are repeated."""
    src, _ = _window_slices(start, size, array.shape)
    part = array[src]
    pads = [(sl.start - b, b + s - sl.stop) for sl, b, s in zip(src, start, size)]
    return np.pad(part, pads, mode="edge") if any(p for pair in pads for p in pair) else part.copy()


def put_window(target: np.ndarray, start: Sequence[int], window: np.ndarray) -> None:
    """Write the in-bounds part of ``window`` back into ``target`` (in place)."""
    src, dst = _window_slices(start, window.shape, target.shape)
    target[src] = window[dst]


def _params(plan: dict[str, Any], seed: int) -> dict[str, Any]:
    geom = plan["geometry"]
    geom_dict = dataclasses.asdict(geom) if dataclasses.is_dataclass(geom) else dict(geom)
    return {"generator": "difftumor", "size_type": plan["size_type"], "stage": plan["stage"],
            "geometry": geom_dict, "window_start": list(plan["window"]), "blur_sigma": plan["blur_sigma"],
            "seed": seed, "empty": not bool(plan["mask"].any())}


def _load_pipelines(directory: Path, organ: str, stages: set[str], device: torch.device,
                    blur_sigma_range: tuple[float, float]):
    autoencoder, ae_meta = load_autoencoder(directory, device)
    pipelines, crop_size = {}, None
    for stage in sorted(stages):
        denoiser, scheduler_config, meta = load_diffusion(directory, organ, stage, device)
        crop_size = meta.get("train", {}).get("crop_size", crop_size)
        pipelines[stage] = DiffTumorPipeline(autoencoder, denoiser, build_scheduler(scheduler_config),
                                             blur_sigma_range=blur_sigma_range)
    if crop_size is None:
        crop_size = ae_meta.get("train", {}).get("crop_size")
    return pipelines, crop_size, ae_meta.get("spacing")
