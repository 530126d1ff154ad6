"""Hu et al. (CVPR 2023) model-based tumor synthesis, in HU, on the tumor's box only.

``sample_params`` draws everything random (geometry + texture + intensity + seeds) into a
frozen, JSON-serialisable ``TumorParams``; ``synthesize`` is then a pure function of
(ct, organ mask, params), so a params dict replays a tumor exactly.

Blending as the reference ``get_tumor``: ``ct - texture * gaussian(mask, sigma) * difference``
on organ voxels (the tumor is hypo-attenuating relative to the local parenchyma; underlying
anatomy and noise are kept). Per-organ placement follows DiffTumor STEP3 (see geometry.py).
An exophytic kidney tumor (DiffTumor: unclipped, labelled tumor outside the organ, where its
inpainting model paints tumor tissue) is drawn outside the organ as tumor tissue, the organ's
median HU darkened by the same texture, blended into the surroundings by the blurred mask;
darkening fat instead would make it darker than any tumor. It replaces only fat and soft tissue
outside other labelled structures (``synthesis/exophytic.py``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from synthesis.errors import SynthesisInputError
from synthesis.exophytic import per_crop_other_organs
from synthesis.geometry import (
    HU2023_SIZE_PROBS, PreparedOrgan, TumorGeometry, normalise_size_probs, prepare_organ,
    resolve_mix_counts, sample_geometry, sample_size_type, sample_with_size_fallback,
)
from synthesis.hu_blend import BLUR_TRUNCATE, apply_tumor_, tumor_on_box  # noqa: F401 (public here)
from synthesis.protocol import LocalTumor, Piece, SynthesisOutput


@dataclass(frozen=True)
class HuRanges:
    """Sampling ranges (reference values; sigma_a/sigma_b are the reference bank's choices)."""

    difference_hu: tuple[float, float] = (65.0, 145.0)
    edge_sigma_mm: tuple[float, float] = (1.0, 2.0)
    sigma_a_mm: tuple[float, ...] = (3.0, 6.0, 9.0, 12.0, 15.0)
    sigma_b_mm: tuple[float, ...] = (4.0, 7.0)
    u0: tuple[float, float] = (0.5, 0.55)
    scale: tuple[float, float] = (0.19, 0.21)
    base: tuple[float, float] = (0.04, 0.06)
    geometry: str = "hu2023"  # geometry preset: "hu2023" (reference counts) or "difftumor"


@dataclass(frozen=True)
class TumorParams:
    """Everything that defines one synthetic tumor (``to_dict`` is JSON-serialisable).

    Attributes:
        geometry: tumor shape and placement (voxel centres, radii in mm, deformation seed).
        spacing: (3,) voxel size in mm the params were drawn for.
        sigma_a_mm, sigma_b_mm, scale, base, u0: texture parameters (see texture.py).
        difference_hu: maximal darkening in HU (texture 1, blurred mask 1).
        edge_sigma_mm: Gaussian blur of the mask edge, mm.
        texture_seed: seed of the texture noise.
    """

    geometry: TumorGeometry
    spacing: tuple[float, float, float]
    sigma_a_mm: float
    sigma_b_mm: float
    scale: float
    base: float
    u0: float
    difference_hu: float
    edge_sigma_mm: float
    texture_seed: int
    method: str = field(default="hu")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TumorParams":
        try:
            values = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
            values["geometry"] = TumorGeometry.from_dict(data["geometry"])
            values["spacing"] = tuple(float(s) for s in data["spacing"])
            for key in ("sigma_a_mm", "sigma_b_mm", "scale", "base", "u0", "difference_hu", "edge_sigma_mm"):
                values[key] = float(values[key])
            values["texture_seed"] = int(values["texture_seed"])
            return cls(**values)
        except (KeyError, TypeError, ValueError) as exc:
            raise SynthesisInputError(f"tumor params: missing or invalid field ({exc!r})") from exc


def sample_params(organ_mask: np.ndarray, spacing: Sequence[float], rng: np.random.Generator,
                  ranges: HuRanges | None = None, organ: str = "liver", size_type: str | None = None,
                  size_probs: Mapping[str, float] | None = None, axial_axis: int = 2) -> TumorParams:
    """Draw the params of one tumor.

    Args:
        organ_mask: (X, Y, Z) organ mask.
        spacing: (3,) voxel size in mm.
        rng: randomness.
        ranges: sampling ranges (default ``HuRanges()``).
        organ: liver|pancreas|kidney (placement variant).
        size_type: tiny|small|medium|large|mix, or None to draw one from ``size_probs``.
        size_probs: size-class probabilities (default Hu et al.'s: 0.2 each of tiny/small/medium/
            large/mix).
        axial_axis: array axis of the superior-inferior direction.
    """
    ranges = ranges or HuRanges()
    size_type = size_type or sample_size_type(rng, normalise_size_probs(size_probs, HU2023_SIZE_PROBS))
    geometry = sample_geometry(organ_mask, spacing, size_type, organ, rng,
                               ranges=ranges.geometry, axial_axis=axial_axis)
    return TumorParams(
        geometry=geometry, spacing=tuple(float(s) for s in spacing),
        sigma_a_mm=float(rng.choice(ranges.sigma_a_mm)), sigma_b_mm=float(rng.choice(ranges.sigma_b_mm)),
        scale=float(rng.uniform(*ranges.scale)), base=float(rng.uniform(*ranges.base)),
        u0=float(rng.uniform(*ranges.u0)), difference_hu=float(rng.uniform(*ranges.difference_hu)),
        edge_sigma_mm=float(rng.uniform(*ranges.edge_sigma_mm)),
        texture_seed=int(rng.integers(2**31 - 1)),
    )


def _check_inputs(ct_hu: np.ndarray, organ_mask: np.ndarray, params: TumorParams) -> None:
    if ct_hu.ndim != 3 or ct_hu.shape != organ_mask.shape:
        raise SynthesisInputError(
            f"CT shape {ct_hu.shape} and organ mask shape {organ_mask.shape}: expected equal 3D shapes")
    if not isinstance(params, TumorParams):
        raise SynthesisInputError(f"params: expected TumorParams, got {type(params).__name__}")


def synthesize(ct_hu: np.ndarray, organ_mask: np.ndarray, params: TumorParams,
               rng: np.random.Generator | None = None, other_organs: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Pure Hu synthesis: returns (new CT float32 in HU, bool tumor mask); inputs unchanged.

    Args:
        ct_hu: (X, Y, Z) CT in HU (not windowed).
        organ_mask: (X, Y, Z) organ mask.
        params: from ``sample_params`` (carries every seed, so the output is a function of it).
        rng: unused; all randomness lives in ``params`` (accepted for API symmetry).
        other_organs: optional (X, Y, Z) mask of other labelled structures, which an exophytic
            tumor never replaces (see ``apply_tumor_``).
    """
    del rng
    organ_mask = organ_mask.mask if isinstance(organ_mask, PreparedOrgan) else organ_mask
    _check_inputs(ct_hu, organ_mask, params)
    out = np.array(ct_hu, dtype=np.float32, copy=True)
    mask = np.zeros(out.shape, bool)
    for box, tumor in apply_tumor_(out, organ_mask, params, other_organs):
        mask[box] |= tumor
    return out, mask


class HuGenerator:
    """``TumorGenerator`` for the Hu regime: one freshly drawn tumor per crop (CPU, numpy).

    Defaults are the official SyntheticTumors ones: size classes tiny/small/medium/large/mix with
    0.2 each (``HU2023_SIZE_PROBS``) and the ``hu2023`` geometry (``HuRanges().geometry``).
    """

    name = "hu"
    MAX_EMPTY_RETRIES = 5

    def __init__(self, organ: str, *, device: Any = "cpu", checkpoint: Any = None,
                 size_probs: Mapping[str, float] | None = None, ranges: HuRanges | None = None,
                 axial_axis: int = 2):
        self.organ = organ
        # numpy/numba on the CPU whatever device trains: reporting "cpu" lets the trainer run it in
        # its DataLoader workers (a CUDA generator must run in the main process)
        self.device = "cpu"
        del device  # accepted so every generator takes the same arguments
        self.size_probs = normalise_size_probs(size_probs, HU2023_SIZE_PROBS)
        self.ranges = ranges or HuRanges()
        if self.size_probs["mix"] > 0:
            resolve_mix_counts(self.ranges.geometry)  # fail now, not at the first mix draw
        self.axial_axis = axial_axis
        self._warm = False  # compiled kernels loaded in this process (warm_up)
        self._organ_memo = None  # (owner array, key, PreparedOrgan) of the last read-only organ mask
        del checkpoint  # model-based: no weights

    def sample(self, organ_mask: np.ndarray, spacing: Sequence[float], rng: np.random.Generator) -> TumorParams:
        """Draw a size type, then params; if the organ part of the crop is too small for it, fall
        back to the next smaller size type that has a non-zero probability (a fixed single size
        type, e.g. ``{"large": 1}``, raises instead)."""
        return sample_with_size_fallback(rng, self.size_probs, lambda size_type: sample_params(
            organ_mask, spacing, rng, self.ranges, self.organ, size_type=size_type, axial_axis=self.axial_axis))[1]

    def warm_up(self) -> None:
        """Load the compiled kernels in this process (once): call it before forking DataLoader
        workers, which then share them instead of each loading them again (~1 s a worker)."""
        if self._warm:
            return
        grid = np.ogrid[:40, :40, :40]
        organ = sum(((g - 20) / 17.0) ** 2 for g in grid) <= 1
        self(np.where(organ, 100.0, 0.0).astype(np.float32)[None], organ[None], (1.0, 1.0, 1.0),
             np.random.default_rng(0))
        self._warm = True

    def _prepared(self, organ_mask: np.ndarray):
        """``prepare_organ`` (a scan of the whole mask), once for a read-only mask that comes
        again (`synthesize --count N` on one CT): a read-only array, down to the array that owns
        the memory, is taken not to change; the memo holds that owner, so the memory is not reused."""
        owner, chain_read_only = organ_mask, not organ_mask.flags.writeable
        while isinstance(owner.base, np.ndarray):
            owner = owner.base
            chain_read_only &= not owner.flags.writeable
        if not chain_read_only or owner.base is not None:
            return prepare_organ(organ_mask)
        key = (organ_mask.__array_interface__["data"][0], organ_mask.shape, organ_mask.strides, organ_mask.dtype.str)
        if self._organ_memo is None or self._organ_memo[1] != key or self._organ_memo[0] is not owner:
            self._organ_memo = (owner, key, prepare_organ(organ_mask))
        return self._organ_memo[2]

    def _one(self, ct, organ_mask, spacing, rng, other) -> LocalTumor:
        organ_mask = self._prepared(organ_mask)  # one scan of the mask for all draws
        for _ in range(self.MAX_EMPTY_RETRIES):
            params = self.sample(organ_mask, spacing, rng)
            pieces = tumor_on_box(ct, organ_mask, params, other_organs=other)
            if any(mask.any() for _, _, mask in pieces):  # a deformation can, rarely, push a tiny
                # clipped tumor out of the organ
                return LocalTumor(tuple(Piece(*p) for p in pieces), {"method": self.name, **params.to_dict()})
        raise SynthesisInputError(f"organ mask: no tumor voxel inside the {self.organ} after "
                                  f"{self.MAX_EMPTY_RETRIES} draws (organ too thin?)")

    def local(self, ct_hu: np.ndarray, organ_mask: np.ndarray, spacing: Sequence[float],
              rng: np.random.Generator, other_organs: np.ndarray | None = None) -> list[LocalTumor]:
        """The tumors of ``__call__`` (same rng, same draws), each on its box: no copy of the crops."""
        others = per_crop_other_organs(self.name, ct_hu, organ_mask, other_organs)
        return [self._one(ct, organ, spacing, rng, other) for ct, organ, other in zip(ct_hu, organ_mask, others)]

    def __call__(self, ct_hu: np.ndarray, organ_mask: np.ndarray, spacing: Sequence[float],
                 rng: np.random.Generator, other_organs: np.ndarray | None = None) -> SynthesisOutput:
        """(B, X, Y, Z) crops in HU + organ masks -> SynthesisOutput (one tumor per crop);
        ``other_organs`` (B, X, Y, Z), optional: other labelled structures, never replaced."""
        return SynthesisOutput.from_local(ct_hu, self.local(ct_hu, organ_mask, spacing, rng, other_organs))

    def replay(self, ct_hu: np.ndarray, organ_mask: np.ndarray, params: Mapping[str, Any],
               other_organs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Re-apply one tumor from its params dict (as in ``SynthesisOutput.params``): whole-CT
        copies (``synthesize``, the full-array path ``replay_local`` is tested against)."""
        return synthesize(ct_hu, organ_mask, TumorParams.from_dict(params), other_organs=other_organs)

    def replay_local(self, ct_hu: np.ndarray, organ_mask: np.ndarray, params: Mapping[str, Any],
                     other_organs: np.ndarray | None = None) -> LocalTumor:
        """``replay`` on the tumor's box only (``ct_hu`` and the rest of the CT untouched)."""
        tumor = TumorParams.from_dict(params)
        _check_inputs(ct_hu, np.asarray(organ_mask), tumor)
        pieces = tumor_on_box(ct_hu, organ_mask, tumor, other_organs=other_organs)
        return LocalTumor(tuple(Piece(*p) for p in pieces), dict(params))
