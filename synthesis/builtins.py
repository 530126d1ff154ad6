"""Factories of the built-in generators, registered as ``tumorbench.generators`` entry points.

Each imports its generator class when called, so listing generators (their metadata) never
imports numba kernels or torch.
"""
from __future__ import annotations

from typing import Any, Mapping

from synthesis.protocol import TumorGenerator
from synthesis.registry import tumor_generator

SIZE_PROBS_HELP = "size-type probabilities, e.g. {early = 0.8, medium = 0.1, large = 0.1} (the default)"


@tumor_generator(
    display_name="Hu et al. (CVPR 2023)", licence="method: CVPR 2023 paper; this code: Apache-2.0 (own implementation)",
    replayable=True, devices=("cpu",),
    description="model-based: deformed ellipsoids, Hu et al. texture, darkened by 65-145 HU (numba on the CPU)",
    kwargs={"size_probs": SIZE_PROBS_HELP,
            "ranges": "synthesis.hu.HuRanges: sampling ranges (geometry preset 'hu2023' or 'difftumor')",
            "axial_axis": "array axis of the superior-inferior direction (default 2, RAS)"})
def hu(organ: str, *, device: Any = "cpu", checkpoint: Any = None, size_probs: Mapping[str, float] | None = None,
       ranges: Any = None, axial_axis: int = 2) -> TumorGenerator:
    from synthesis.hu import HuGenerator

    return HuGenerator(organ, device=device, checkpoint=checkpoint, size_probs=size_probs, ranges=ranges,
                       axial_axis=axial_axis)


@tumor_generator(
    display_name="DiffTumor (CVPR 2024)",
    licence="official code and weights CC BY-NC-ND 4.0 (not used); this re-implementation: Apache-2.0",
    needs_weights=True,
    weights_source=("train them: `tumorbench generator train-autoencoder` then `train-diffusion` (or a grid with "
                    "checkpoints = \"auto\" trains tiny ones); the official weights are not shipped (licence)"),
    replayable=False, devices=("cpu", "cuda"),
    description="latent diffusion (3D VQGAN + DDPM/DDIM) inpainting tumors into masked CT crops",
    kwargs={"checkpoint": "folder with autoencoder.pt and diffusion_<organ>_<stage>.pt",
            "size_probs": SIZE_PROBS_HELP, "model_organ": "use another organ's diffusion models",
            "blur_sigma_range": "(lo, hi) Gaussian blur of the pasted crop's mask, voxels",
            "max_batch": "crops denoised per forward pass"})
def difftumor(organ: str, *, device: Any = "cpu", checkpoint: Any = None,
              size_probs: Mapping[str, float] | None = None, model_organ: str | None = None,
              blur_sigma_range: tuple[float, float] = (0.0, 4.0), max_batch: int = 8) -> TumorGenerator:
    from synthesis.difftumor.generator import DiffTumorGenerator

    return DiffTumorGenerator(organ, device=device, checkpoint=checkpoint, size_probs=size_probs,
                              model_organ=model_organ, blur_sigma_range=tuple(blur_sigma_range), max_batch=max_batch)
