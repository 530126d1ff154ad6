"""Tumor size types and their sampling ranges (Hu et al. 2023 and DiffTumor STEP3 presets)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from synthesis.errors import OrganTooSmallError, SynthesisInputError

SIZE_TYPES = ("tiny", "small", "medium", "large")
#: Size classes a generator draws: the four types, and "mix" (Hu et al.: several tumors of every
#: type at once). Ordered from small to large, the order of the size fallback.
SIZE_CLASSES = (*SIZE_TYPES, "mix")
BASE_RADIUS_MM = {"tiny": 4.0, "small": 8.0, "medium": 16.0, "large": 32.0}
#: DiffTumor STEP3 type probabilities; "early" is split tiny/small 0.5/0.5.
DEFAULT_SIZE_PROBS = {"early": 0.8, "medium": 0.1, "large": 0.1}
#: SyntheticTumors TumorGenerated: tumor_prob=[0.2]*5 over tiny/small/medium/large/mix.
HU2023_SIZE_PROBS = {"tiny": 0.2, "small": 0.2, "medium": 0.2, "large": 0.2, "mix": 0.2}


@dataclass(frozen=True)
class SizeRange:
    """Sampling ranges of one size type.

    Attributes:
        radius_scale: per-axis semi-axis = base radius x U(lo, hi).
        count: number of ellipsoids, integer in [lo, hi].
        elastic_sigma_mm: (lo, hi) of the elastic displacement std.
        elastic_integer: draw the sigma as an integer (reference ``randint``) instead of uniform.
    """

    radius_scale: tuple[float, float]
    count: tuple[int, int]
    elastic_sigma_mm: tuple[float, float]
    elastic_integer: bool


#: SyntheticTumors (Hu et al.) get_fixed_geo: radii x[0.75,1.25], several tumors per call.
HU2023_RANGES = {
    "tiny": SizeRange((0.75, 1.25), (3, 10), (0.5, 1.0), False),
    "small": SizeRange((0.75, 1.25), (3, 10), (1, 2), True),
    "medium": SizeRange((0.75, 1.25), (2, 5), (3, 6), True),
    "large": SizeRange((0.75, 1.25), (1, 3), (5, 10), True),
}
#: DiffTumor STEP3: 1-3 early tumors, one medium/large, large semi-axes up to 2.0 x 32 mm.
DIFFTUMOR_RANGES = {
    "tiny": SizeRange((0.75, 1.25), (1, 3), (0.5, 1.0), False),
    "small": SizeRange((0.75, 1.25), (1, 3), (1, 2), True),
    "medium": SizeRange((0.75, 1.25), (1, 1), (3, 6), True),
    "large": SizeRange((0.75, 2.0), (1, 1), (5, 10), True),
}
#: SyntheticTumors get_fixed_geo "mix": this many ellipsoids of each type (each drawn with that
#: type's radius and elastic ranges) in one tumor. DiffTumor has no mix.
HU2023_MIX_COUNTS = {"tiny": (3, 10), "small": (5, 10), "medium": (2, 5), "large": (1, 3)}
GEOMETRY_PRESETS = {"hu2023": HU2023_RANGES, "difftumor": DIFFTUMOR_RANGES}
MIX_COUNTS = {"hu2023": HU2023_MIX_COUNTS}


def resolve_ranges(ranges: str | Mapping[str, SizeRange] | None) -> Mapping[str, SizeRange]:
    """Preset name ("hu2023" default, "difftumor") or a {size_type: SizeRange} mapping."""
    if ranges is None:
        return HU2023_RANGES
    if isinstance(ranges, str):
        if ranges not in GEOMETRY_PRESETS:
            raise SynthesisInputError(f"geometry preset {ranges!r}: expected one of {sorted(GEOMETRY_PRESETS)}")
        return GEOMETRY_PRESETS[ranges]
    return ranges


def resolve_mix_counts(ranges: str | Mapping[str, object] | None) -> Mapping[str, tuple[int, int]]:
    """{size_type: (lo, hi) count} of a "mix" tumor for a preset (only "hu2023" has one) or a custom
    ranges mapping (its "mix" entry)."""
    name = "hu2023" if ranges is None else ranges
    counts = MIX_COUNTS.get(name) if isinstance(name, str) else name.get("mix")
    if counts is None:
        raise SynthesisInputError(f"size type 'mix': geometry {name if isinstance(name, str) else 'ranges'} "
                                  f"has no mix (only {sorted(MIX_COUNTS)}); use tiny/small/medium/large")
    return counts


def normalise_size_probs(probs: Mapping[str, float] | None = None,
                         default: Mapping[str, float] = DEFAULT_SIZE_PROBS) -> dict[str, float]:
    """Size-class probabilities over SIZE_CLASSES (``default`` when None); an "early" entry is split
    tiny/small 0.5/0.5."""
    probs = dict(default if probs is None else probs)
    out = {t: 0.0 for t in SIZE_CLASSES}
    for key, value in probs.items():
        if key == "early":
            out["tiny"] += 0.5 * value
            out["small"] += 0.5 * value
        elif key in out:
            out[key] += value
        else:
            raise SynthesisInputError(f"size_probs: unknown size type {key!r}; expected {SIZE_CLASSES} or 'early'")
    total = sum(out.values())
    if total <= 0 or any(v < 0 for v in out.values()):
        raise SynthesisInputError(f"size_probs {probs}: need non-negative values with a positive sum")
    return {k: v / total for k, v in out.items()}


def sample_size_type(rng: np.random.Generator, probs: Mapping[str, float] | None = None) -> str:
    """Draw a size class (default: early 0.8 -> tiny/small 0.5/0.5, medium 0.1, large 0.1)."""
    table = normalise_size_probs(probs)
    return str(rng.choice(SIZE_CLASSES, p=[table[t] for t in SIZE_CLASSES]))


def sample_with_size_fallback(rng: np.random.Generator, probs: Mapping[str, float] | None, draw):
    """Draw a size type, then ``draw(size_type)``; when that raises because the organ part of the
    crop is too small for it, fall back to the next smaller size type with non-zero probability.

    Crops of small organs (pancreas, kidney) often cannot hold a 'large' tumor; training must not
    stop for that (``OrganTooSmallError``). A fixed single size type (e.g. ``{"large": 1}``) still
    raises, as does any other error (an empty organ). Returns ``(size_type, draw(size_type))``.
    """
    table = normalise_size_probs(probs)
    drawn = sample_size_type(rng, table)
    allowed = [t for t in SIZE_CLASSES[: SIZE_CLASSES.index(drawn) + 1] if table[t] > 0]
    for size_type in reversed(allowed):
        try:
            return size_type, draw(size_type)
        except OrganTooSmallError:
            if size_type == allowed[0]:
                raise
    raise AssertionError("unreachable: the smallest allowed size type re-raises")
