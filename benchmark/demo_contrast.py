"""How dark the demo's early tumors are: real phantom tumors vs the tiny DiffTumor generator's.

Contrast of a tumor = mean HU inside it minus mean HU of the organ (label 1, no tumor) in a shell
around it (from one voxel to one voxel + ``SHELL_MM`` outside its surface), so partial volume at
the edge counts for neither. Real early tumors: the 26-connected tumor components with an
equivalent radius <= 10 mm (the evaluation's "early") of the labeled training cases. Synthetic
ones: one early (tiny or small) tumor per healthy training case, painted on the organ crop.
Only fold ``fold``'s training cases are read: the test fold is for the report alone.

A third row says what the generator's autoencoder keeps of the real early tumors: each is encoded and
decoded (snapped to the codebook, as the pipeline decodes) in a crop of the early model's size. An
early model that paints through this autoencoder is trained to reproduce those decoded crops, so a
painted contrast far beyond this row's is not learned tumor appearance (docs/difftumor.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

SHELL_MM = 6.0
EARLY_SIZES = ("tiny", "small")


@dataclass(frozen=True)
class Contrast:
    """Contrasts (HU) of ``n`` tumors of one organ and source: signed mean and spread, and the mean
    magnitude, which is what the real-vs-synthetic gap compares (a generator may paint tumors both
    darker and brighter than the organ, and a signed mean would let those cancel out)."""

    organ: str
    source: str
    n: int
    mean_hu: float
    sd_hu: float
    mean_abs_hu: float


def tumor_contrast(ct: np.ndarray, tumor: np.ndarray, organ: np.ndarray, spacing: Sequence[float]) -> float | None:
    """Mean HU in ``tumor`` minus mean HU of ``organ`` voxels in the shell around it (None: no shell)."""
    from scipy import ndimage

    tumor = np.asarray(tumor, bool)
    if not tumor.any():
        return None
    distance = ndimage.distance_transform_edt(~tumor, sampling=spacing)
    step = float(max(spacing))
    shell = np.asarray(organ, bool) & ~tumor & (distance > step) & (distance <= step + SHELL_MM)
    if not shell.any():
        return None
    return float(ct[tumor].mean() - ct[shell].mean())


def _summary(organ: str, source: str, values: list[float]) -> Contrast:
    arr = np.asarray(values, float)
    if arr.size == 0:
        return Contrast(organ, source, 0, float("nan"), float("nan"), float("nan"))
    return Contrast(organ, source, int(arr.size), float(arr.mean()), float(arr.std()), float(np.abs(arr).mean()))


def gap_hu(synthetic: Contrast, real: Contrast) -> float:
    """How far the synthetic tumors' mean contrast magnitude is from the real ones' (HU)."""
    return abs(synthetic.mean_abs_hu - real.mean_abs_hu)


def early_tumors(dataset: Any, case_ids: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(ct, labels, tumor mask) of every real early tumor (radius <= 10 mm) in the labeled ``case_ids``
    (tumors of one case share its arrays), read once for the real and the autoencoder rows."""
    from benchmark.realism_collect import load_case
    from benchmark.realism_crops import EARLY_RADIUS_MM, components, equivalent_radius

    tumors = []
    for case_id in case_ids:
        ct, labels = load_case(dataset, case_id)
        tumors += [(ct, labels, comp) for comp in components(labels == 2, min_voxels=1)
                   if equivalent_radius(int(comp.sum()), dataset.spacing) <= EARLY_RADIUS_MM]
    return tumors


def real_early_contrast(dataset: Any, tumors: Sequence[tuple]) -> Contrast:
    """Contrast of the real early ``tumors`` (from :func:`early_tumors`)."""
    values = [tumor_contrast(ct, comp, labels == 1, dataset.spacing) for ct, labels, comp in tumors]
    return _summary(dataset.organ, "real", [v for v in values if v is not None])


def autoencoder_early_contrast(dataset: Any, tumors: Sequence[tuple], checkpoint) -> Contrast:
    """Contrast of the same real early ``tumors`` after the round trip through the autoencoder of the
    DiffTumor ``checkpoint`` folder, in a crop of the early model's size centred on each tumor."""
    import torch

    from synthesis.difftumor.autoencoder import hu_to_unit, unit_to_hu
    from synthesis.difftumor.checkpoint import autoencoder_dir_for, diffusion_name, load_autoencoder, load_json
    from synthesis.difftumor.crops import crop_at

    meta = load_json(Path(checkpoint) / f"{diffusion_name(dataset.organ, 'early')}.json", "DiffTumor early config")
    autoencoder, _ = load_autoencoder(autoencoder_dir_for(checkpoint, [meta]))
    size, window = tuple(meta["train"]["crop_size"]), autoencoder.config.hu_window
    values = []
    for ct, labels, comp in tumors:
        centre = np.round(np.argwhere(comp).mean(0)).astype(int)
        crop_ct, crop_tumor, crop_labels = (crop_at(a, centre, size, fill) for a, fill in
                                            ((ct, -1000.0), (comp, False), (labels, 0)))
        with torch.no_grad():
            unit = torch.from_numpy(hu_to_unit(crop_ct, window)[None, None].astype(np.float32))
            decoded = unit_to_hu(autoencoder.decode(autoencoder.encode(unit)).clamp(-1.0, 1.0), window)[0, 0]
        value = tumor_contrast(decoded.numpy(), crop_tumor, crop_labels == 1, dataset.spacing)
        values += [] if value is None else [value]
    return _summary(dataset.organ, "autoencoder", values)


def synthetic_early_contrast(dataset: Any, case_ids: Sequence[str], generator_kwargs: Mapping[str, Any],
                             name: str = "difftumor", seed: int = 0) -> Contrast:
    """Contrast of one early tumor per healthy ``case_ids`` (tiny and small alternating)."""
    from benchmark.realism_collect import load_case, synthesize_on_case
    from synthesis.registry import make_generator

    rng = np.random.default_rng(seed)
    makers = {size: make_generator(name, dataset.organ, size_probs={s: float(s == size) for s in
                                                                     ("tiny", "small", "medium", "large")},
                                   **generator_kwargs) for size in EARLY_SIZES}
    values = []
    for k, case_id in enumerate(case_ids):
        ct, labels = load_case(dataset, case_id)
        ct_out, tumor = synthesize_on_case(makers[EARLY_SIZES[k % 2]], ct, labels, dataset.spacing, rng)
        value = tumor_contrast(ct_out, tumor, (labels >= 1) & ~tumor, dataset.spacing)
        values += [] if value is None else [value]
    return _summary(dataset.organ, name, values)


def early_contrasts(dataset_dir, generator_kwargs: Mapping[str, Any], fold: int = 0, seed: int = 0) -> list[Contrast]:
    """(real, autoencoder round trip, difftumor) early-tumor contrasts of one organ's dataset, on fold
    ``fold``'s training cases."""
    from benchmark.data import Dataset

    dataset = Dataset.open(dataset_dir)
    train_ids = set(dataset.fold(fold)[0])
    labeled = [c for c in dataset.case_ids("labeled") if c in train_ids]
    healthy = [c for c in dataset.case_ids("healthy") if c in train_ids]
    tumors = early_tumors(dataset, labeled)
    return [real_early_contrast(dataset, tumors),
            autoencoder_early_contrast(dataset, tumors, generator_kwargs["checkpoint"]),
            synthetic_early_contrast(dataset, healthy, generator_kwargs, seed=seed)]


def format_contrasts(contrasts: Sequence[Contrast]) -> str:
    """Terminal table: organ, source, n, signed mean +/- sd, mean |contrast| and the gap to real."""
    lines = ["  early tumors (radius <= 10 mm): contrast to the surrounding organ, HU (fold-0 training cases);",
             "  autoencoder = the real ones after the generator's autoencoder: what its early model can learn to paint",
             f"    {'organ':<9} {'source':<11} {'n':>3} {'mean +/- sd':>15} {'mean |c|':>9} {'gap to real':>12}"]
    real = {c.organ: c for c in contrasts if c.source == "real"}
    for c in contrasts:
        gap = "" if c.source == "real" or c.organ not in real else f"{gap_hu(c, real[c.organ]):12.1f}"
        lines.append(f"    {c.organ:<9} {c.source:<11} {c.n:>3} {c.mean_hu:7.1f} +/- {c.sd_hu:4.1f} "
                     f"{c.mean_abs_hu:9.1f} {gap}".rstrip())
    return "\n".join(lines)
