"""``DiffTumorGenerator``: the TumorGenerator that inpaints tumors with the trained diffusion models.

Per crop: draw a size type (tiny/small -> early model, medium/large -> non-early model) and a mask
from the shared geometry module (``difftumor`` preset: 1-3 early ellipsoids, one medium/large,
large semi-axes 24-64 mm), take a window of the model's crop size in mm around the mask (edge-padded
when the crop is smaller), resample it to the checkpoint's spacing when the CT's differs, inpaint
all windows of one stage in batched pipeline calls and paste the change back (resampled to the
CT's grid). The ellipsoids of one tumor are placed independently in the organ, so on a full CT
they can lie farther apart than one model crop (e.g. one in each kidney): they are grouped into
as few windows as hold them, and each window is inpainted (the first with the tumor's seed, the
others with seeds derived from it). Only the part of an ellipsoid wider than the model crop
(large tumors) is not generated; it is dropped from the returned mask, and ``empty`` in the
params says whether anything was generated.

The outer part of an unclipped (exophytic) kidney tumor keeps only fat and soft tissue outside
``other_organs``, and the blend changes nothing outside the organ and that region
(``synthesis.exophytic``, shared with Hu): never bone, gas or another labelled organ.

Every tumor has its own seed (its noise comes from a generator seeded with it), so a tumor does
not depend on its batch: ``replay(ct, organ, params)`` redraws it from its params dict.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from synthesis import geometry
from synthesis.difftumor.checkpoint import autoencoder_dir_for, load_autoencoder, load_diffusion
from synthesis.difftumor.denoiser import build_scheduler
from synthesis.difftumor.pipeline import DiffTumorPipeline
from synthesis.difftumor.windows import put_window, render_in_windows, take_window, zoom_to
from synthesis.errors import SynthesisInputError
from synthesis.exophytic import exophytic_region, per_crop_other_organs
from synthesis.protocol import SynthesisOutput

SIZE_STAGE = {"tiny": "early", "small": "early", "medium": "nonearly", "large": "nonearly"}
SPACING_RTOL = 1e-3  # spacings closer than this to the checkpoint's are used as they are


@dataclasses.dataclass(frozen=True)
class TumorPlan:
    """One crop's tumor: what ``params`` records, plus its rendered mask (not recorded)."""

    size_type: str
    geometry: geometry.TumorGeometry
    spacing: tuple[float, float, float]
    window_starts: tuple[tuple[int, int, int], ...]
    blur_sigma_mm: float
    seed: int
    mask: np.ndarray  # the tumor voxels the windows generate (the returned mask)

    @property
    def stage(self) -> str:
        return SIZE_STAGE[self.size_type]

    def window_seed(self, index: int) -> int:
        """Noise seed of window ``index``: the tumor's own for the first (a one-window tumor is
        drawn as before windows were grouped), derived from it for the others."""
        if index == 0:
            return self.seed
        return int(np.random.SeedSequence([self.seed, index]).generate_state(1, np.uint64)[0] % 2 ** 62)

    def to_params(self) -> dict[str, Any]:
        return {"method": "difftumor", "size_type": self.size_type, "stage": self.stage,
                "geometry": self.geometry.to_dict(), "spacing": list(self.spacing),
                "window_start": list(self.window_starts[0]), "window_starts": [list(s) for s in self.window_starts],
                "blur_sigma_mm": self.blur_sigma_mm, "seed": self.seed, "empty": not bool(self.mask.any())}


class DiffTumorGenerator:
    """Generative tumor synthesis (DiffTumor) on batches of HU crops.

    Args:
        organ: liver | pancreas | kidney (mask geometry variant and, by default, model weights).
        device: torch device of the models.
        checkpoint: folder with diffusion_<organ>_<stage>.pt/.json and the autoencoder (autoencoder.pt/
            .json in the folder, or where the diffusion .json records it).
        size_probs: probabilities of tiny/small/medium/large (default DiffTumor's early 0.8 / medium
            0.1 / large 0.1; no "mix").
        model_organ: use another organ's diffusion weights (the paper's cross-organ runs).
        blur_sigma_mm: blend-mask blur range in mm (official U(0, 4) voxels at 1 mm).
        max_batch: most crops per forward pass on an accelerator. On CPU crops run one at a time:
            CPU convolutions round differently by batch size (~1e-6), and a tumor must replay bit
            for bit whatever batch it was drawn in.
        geometry_preset: tumor geometry ranges ("difftumor", the official STEP3 ones, by default).
        pipelines, crop_size, model_spacing: ready-made pipelines per stage instead of a checkpoint.
    """

    name = "difftumor"

    def __init__(self, organ: str, *, device: str | torch.device = "cpu", checkpoint: str | Path | None = None,
                 size_probs: Mapping[str, float] | None = None, model_organ: str | None = None,
                 blur_sigma_mm: tuple[float, float] = (0.0, 4.0), max_batch: int = 8,
                 geometry_preset: str = "difftumor", pipelines: Mapping[str, DiffTumorPipeline] | None = None,
                 crop_size: Sequence[int] | None = None, model_spacing: Sequence[float] | None = None) -> None:
        self.organ, self.device = organ, torch.device(device)
        self.size_probs = geometry.normalise_size_probs(size_probs)
        if self.size_probs["mix"] > 0:
            raise SynthesisInputError("difftumor size_probs: DiffTumor has no 'mix' size type")
        self.blur_sigma_mm, self.max_batch = tuple(blur_sigma_mm), max_batch
        self.geometry_preset = geometry_preset
        geometry.resolve_ranges(geometry_preset)  # a bad preset name fails here
        needed = {SIZE_STAGE[size] for size, p in self.size_probs.items() if p > 0}
        if pipelines is None:
            if checkpoint is None:
                raise SynthesisInputError(
                    "DiffTumor needs trained weights: pass checkpoint=DIR (train them with `tumorbench generators "
                    "train autoencoder` and `train diffusion`, or `benchmark.generators.train_tiny_generators`)")
            pipelines, crop_size, model_spacing = _load_pipelines(
                Path(checkpoint), model_organ or organ, needed, self.device)
        missing = sorted(needed - set(pipelines))
        if missing or crop_size is None:
            raise SynthesisInputError(f"DiffTumor generator: pipelines for {missing or needed} and a crop_size needed")
        self.pipelines, self.crop_size = dict(pipelines), tuple(int(c) for c in crop_size)
        self.model_spacing = None if model_spacing is None else tuple(float(s) for s in model_spacing)

    def __call__(self, ct_hu: np.ndarray, organ_mask: np.ndarray, spacing: Sequence[float],
                 rng: np.random.Generator, other_organs: np.ndarray | None = None) -> SynthesisOutput:
        """Add one tumor per crop. ct_hu, organ_mask: (B, X, Y, Z); returns HU crops + tumor masks.
        ``other_organs`` (B, X, Y, Z), optional: other labelled structures, never replaced."""
        ct = np.asarray(ct_hu, dtype=np.float32)
        organs = np.asarray(organ_mask, dtype=bool)
        others = per_crop_other_organs("difftumor", ct, organs, other_organs)
        plans = [outer_part_restricted(self._plan(organs[b], spacing, rng), ct[b], organs[b], others[b])
                 for b in range(len(ct))]
        out_ct, out_mask = ct.copy(), np.zeros(ct.shape, dtype=bool)
        self._generate(ct, organs, others, plans, out_ct, out_mask)
        return SynthesisOutput(ct_hu=out_ct, tumor_mask=out_mask, params=tuple(p.to_params() for p in plans))

    def replay(self, ct_hu: np.ndarray, organ_mask: np.ndarray, params: Mapping[str, Any],
               other_organs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Re-generate one tumor from its params dict (as in ``SynthesisOutput.params``) on an
        (X, Y, Z) CT: the same output as when it was drawn (with the same ``other_organs``),
        whatever batch it was drawn in."""
        organ = np.asarray(organ_mask, dtype=bool)
        other = None if other_organs is None else np.asarray(other_organs, dtype=bool)
        ct = np.asarray(ct_hu, dtype=np.float32)[None]
        plan = outer_part_restricted(_plan_from_params(organ, params, self._window_size), ct[0], organ, other)
        out_ct, out_mask = ct.copy(), np.zeros(ct.shape, dtype=bool)
        self._generate(ct, organ[None], [other], [plan], out_ct, out_mask)
        return out_ct[0], out_mask[0]

    def _plan(self, organ: np.ndarray, spacing: Sequence[float], rng: np.random.Generator) -> TumorPlan:
        size_type, geom = geometry.sample_with_size_fallback(
            rng, self.size_probs, lambda size: geometry.sample_geometry(
                organ, spacing, size, self.organ, rng, ranges=self.geometry_preset))
        mask, starts = render_in_windows(organ, spacing, geom, self._window_size(spacing))
        blur = float(rng.uniform(*self.blur_sigma_mm))
        return TumorPlan(size_type, geom, tuple(float(s) for s in spacing), starts, blur,
                         seed=int(rng.integers(2 ** 62)), mask=mask)

    def _generate(self, ct, organs, others, plans, out_ct, out_mask) -> None:
        for stage, pipeline in self.pipelines.items():
            todo = [(b, k) for b, plan in enumerate(plans) if plan.stage == stage and plan.mask.any()
                    for k in range(len(plan.window_starts))]
            batch = 1 if self.device.type == "cpu" else self.max_batch
            for start in range(0, len(todo), batch):
                self._run(pipeline, todo[start:start + batch], plans, ct, organs, others, out_ct, out_mask)

    def _resamples(self, spacing: Sequence[float]) -> bool:
        return self.model_spacing is not None and not np.allclose(spacing, self.model_spacing, rtol=SPACING_RTOL)

    def _window_size(self, spacing: Sequence[float]) -> tuple[int, ...]:
        """The model crop's extent in voxels of ``spacing`` (the crop size when no resampling)."""
        if not self._resamples(spacing):
            return self.crop_size
        return tuple(max(1, int(round(c * m / s))) for c, m, s in zip(self.crop_size, self.model_spacing, spacing))

    def _run(self, pipeline, batch, plans, ct, organs, others, out_ct, out_mask) -> None:
        native, model_in, sigmas = [], [], []
        for b, k in batch:
            plan = plans[b]
            size, resample = self._window_size(plan.spacing), self._resamples(plan.spacing)
            windows = [take_window(a, plan.window_starts[k], size) for a in (ct[b], organs[b], plan.mask)]
            other = None if others[b] is None else take_window(others[b], plan.window_starts[k], size)
            # the blend may change the organ and what an outer part may replace, nothing else
            changeable = exophytic_region(windows[0], windows[1], other) != 0
            native.append((windows[0], windows[2], changeable))
            if resample:  # CT linear; masks linear then >= 0.5 (nearest drops thin parts)
                windows = [zoom_to(w.astype(np.float32), self.crop_size, 1) for w in windows]
                windows[1:] = [w >= 0.5 for w in windows[1:]]
            model_in.append(windows)
            sigmas.append(tuple(plan.blur_sigma_mm / s for s in (self.model_spacing if resample else plan.spacing)))
        ct_m, organ_m, mask_m = (np.stack(part) for part in zip(*model_in))
        generators = [torch.Generator(device=self.device).manual_seed(plans[b].window_seed(k)) for b, k in batch]
        result = pipeline(ct_m, organ_m, mask_m, generators, blur_sigmas=sigmas)
        for index, (b, k) in enumerate(batch):
            ct_w, mask_w, changeable = native[index]
            change = result[index] - ct_m[index]
            if change.shape != ct_w.shape:  # back to the CT's grid; zero change stays exactly zero
                change = zoom_to(change, ct_w.shape, 1)
            change[~changeable] = 0.0  # the official blend also changes bone, gas, other organs
            start = plans[b].window_starts[k]
            current = take_window(out_ct[b], start, ct_w.shape)
            larger = np.abs(change) > np.abs(current - ct_w)  # overlapping windows: the larger change wins
            current[larger] = ct_w[larger] + change[larger]
            put_window(out_ct[b], start, current)
            put_window(out_mask[b], start, mask_w | take_window(out_mask[b], start, mask_w.shape))


def outer_part_restricted(plan: TumorPlan, ct: np.ndarray, organ: np.ndarray,
                          other_organs: np.ndarray | None) -> TumorPlan:
    """``plan`` with the outer part of an unclipped (exophytic) tumor cut to what a tumor may
    replace: fat and soft tissue not in ``other_organs`` (``synthesis.exophytic``). The unclipped
    rule itself is kept; a clipped tumor lies in the organ and is returned as it is."""
    if plan.geometry.clip_to_organ or not plan.mask.any():
        return plan
    coords = np.argwhere(plan.mask)
    box = tuple(slice(int(lo), int(hi) + 1) for lo, hi in zip(coords.min(0), coords.max(0)))
    mask = plan.mask.copy()
    mask[box] &= exophytic_region(ct, organ, other_organs, box) != 0
    return dataclasses.replace(plan, mask=mask)


def _plan_from_params(organ: np.ndarray, params: Mapping[str, Any], window_size) -> TumorPlan:
    """The plan of a params dict; ``window_size(spacing)`` gives the model window in voxels."""
    try:
        geom = geometry.TumorGeometry.from_dict(params["geometry"])
        spacing = tuple(float(s) for s in params["spacing"])
        plan = TumorPlan(str(params["size_type"]), geom, spacing, (), float(params["blur_sigma_mm"]),
                         int(params["seed"]), mask=np.zeros(0, bool))
    except (KeyError, TypeError, ValueError) as exc:
        raise SynthesisInputError(f"difftumor params: missing or invalid field ({exc!r})") from exc
    if plan.size_type not in SIZE_STAGE:
        raise SynthesisInputError(f"difftumor params: size_type {plan.size_type!r}, expected one of {list(SIZE_STAGE)}")
    mask, starts = render_in_windows(organ, spacing, geom, window_size(spacing))
    return dataclasses.replace(plan, mask=mask, window_starts=starts)


def _load_pipelines(directory: Path, organ: str, stages: set[str], device: torch.device):
    """({stage: pipeline}, crop size, training spacing) from a checkpoint folder."""
    models = {stage: load_diffusion(directory, organ, stage, device) for stage in sorted(stages)}
    autoencoder, ae_meta = load_autoencoder(autoencoder_dir_for(directory, [m[2] for m in models.values()]), device)
    pipelines, crop_size, spacing = {}, ae_meta.get("train", {}).get("crop_size"), ae_meta.get("spacing")
    for stage, (denoiser, scheduler_config, meta) in models.items():
        crop_size = meta.get("train", {}).get("crop_size", crop_size)
        spacing = meta.get("spacing", spacing)
        pipelines[stage] = DiffTumorPipeline(autoencoder, denoiser, build_scheduler(scheduler_config))
    return pipelines, crop_size, spacing
