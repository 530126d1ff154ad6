"""Factories of the built-in generators, registered as ``tumorbench.generators`` entry points.

Each imports its generator class when called, so listing generators (their metadata) never
imports numba kernels or torch.
"""
from __future__ import annotations

from typing import Any, Mapping

from synthesis.protocol import TumorGenerator
from synthesis.registry import tumor_generator

SIZE_PROBS_HELP = "size-type probabilities, e.g. {early = 0.8, medium = 0.1, large = 0.1}"
HU_SIZE_PROBS_HELP = (SIZE_PROBS_HELP + "; default Hu et al.'s own mix: tiny/small/medium/large/mix 0.2 each")
DIFFTUMOR_SIZE_PROBS_HELP = SIZE_PROBS_HELP + " (the default; DiffTumor has no 'mix')"


@tumor_generator(
    display_name="Hu et al. (CVPR 2023)", licence="method: CVPR 2023 paper; this code: Apache-2.0 (own implementation)",
    replayable=True, devices=("cpu",),
    description="model-based: deformed ellipsoids, Hu et al. texture, darkened by 65-145 HU (numba on the CPU)",
    kwargs={"size_probs": HU_SIZE_PROBS_HELP,
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
    weights_source=("train them: `tumorbench generators train autoencoder` then `train diffusion` (or a grid with "
                    "checkpoints = \"auto\" trains tiny ones), or convert the published ones (links in the official "
                    "repository's README) with `tumorbench generators import-official`; never shipped (licence)"),
    replayable=True, devices=("cpu", "cuda"),
    description="latent diffusion (3D VQGAN + DDPM/DDIM) inpainting tumors into masked CT crops",
    kwargs={"checkpoint": "folder with autoencoder.pt and diffusion_<organ>_<stage>.pt",
            "size_probs": DIFFTUMOR_SIZE_PROBS_HELP, "model_organ": "use another organ's diffusion models",
            "blur_sigma_mm": "(lo, hi) Gaussian blur of the pasted crop's mask, mm",
            "geometry_preset": "tumor geometry preset: 'difftumor' (official DiffTumor, default) or 'hu2023'",
            "max_batch": "crops denoised per forward pass (CUDA; on CPU crops run one at a time for replay)"})
def difftumor(organ: str, *, device: Any = "cpu", checkpoint: Any = None,
              size_probs: Mapping[str, float] | None = None, model_organ: str | None = None,
              blur_sigma_mm: tuple[float, float] = (0.0, 4.0), geometry_preset: str = "difftumor",
              max_batch: int = 8) -> TumorGenerator:
    from synthesis.difftumor.generator import DiffTumorGenerator

    return DiffTumorGenerator(organ, device=device, checkpoint=checkpoint, size_probs=size_probs,
                              model_organ=model_organ, blur_sigma_mm=tuple(blur_sigma_mm),
                              geometry_preset=geometry_preset, max_batch=max_batch)
