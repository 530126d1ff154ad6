"""Per-organ rules of the cellular automaton and the params of one tumor (JSON, replayable).

Values from the released Pixel2Cancer code (see docs/generators.md, "Cellular automaton"):
HU bounds and step limits differ per organ, everything else is shared.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np

from synthesis.errors import SynthesisInputError
from synthesis.sizes import normalise_size_probs, sample_size_type

THRESHOLD = 10  # maximal tumor population of a voxel
SEED_STATE = 5  # a seed starts half full, so it spreads from the first step
VARIANTS = ("paper", "released")
SIGMA_A_MM = (3.0, 6.0, 9.0, 12.0, 15.0)  # texture bank of the released code (Hu et al. recipe)
SIGMA_B_MM = (4.0, 7.0)


@dataclass(frozen=True)
class OrganRules:
    """Organ-specific constants.

    Attributes:
        lower: HU of the lowest tissue level; levels are lower, lower+20, lower+40.
        outrange: HU at and above which a voxel is a vessel (boundary); also the boundary state.
        max_steps: steps are drawn in [5, max_steps) when no size type is asked for.
        necrosis_after: a tumor grown more steps than this may get a necrotic core.
        fat_fill: fill fat (HU <= 65) inside the tumor before darkening (pancreas).
        smooth: blur the tumor's HU where P >= 5 on dense tissue ("tissue"), also on fat and
            HU < 0 ("tissue+fat"), or not at all ("none").
    """

    lower: int
    outrange: int
    max_steps: int
    necrosis_after: int
    fat_fill: bool
    smooth: str


ORGAN_RULES = {
    "liver": OrganRules(lower=100, outrange=160, max_steps=150, necrosis_after=50, fat_fill=False, smooth="tissue"),
    "pancreas": OrganRules(lower=100, outrange=160, max_steps=80, necrosis_after=30, fat_fill=True,
                           smooth="tissue+fat"),
    "kidney": OrganRules(lower=140, outrange=200, max_steps=80, necrosis_after=30, fat_fill=False, smooth="none"),
}
#: size type -> [lo, hi] steps whose single-focus tumor has the Hu size type's radius
#: (base radius x 0.75..1.25 = tiny 3-5, small 6-10, medium 12-20, large 24-40 mm), measured
#: on homogeneous tissue with the paper gate (tests/test_cellular.py checks it)
STEPS_BY_SIZE = {"tiny": (17, 27), "small": (31, 50), "medium": (60, 95), "large": (112, 180)}


def organ_rules(organ: str) -> OrganRules:
    if organ not in ORGAN_RULES:
        raise SynthesisInputError(f"organ {organ!r}: the cellular generator has rules for {sorted(ORGAN_RULES)}")
    return ORGAN_RULES[organ]


@dataclass(frozen=True)
class CellularParams:
    """Everything that defines one tumor; with the same CT and organ mask it replays exactly.

    Attributes:
        organ, variant: rule set ("paper" gate and neighbourhood, or the "released" code's).
        spacing: (3,) input voxel size in mm; the automaton runs on a 1 mm grid of the box.
        box_lo, box_hi: the organ's bounding box in input voxels (the automaton's domain).
        steps: growth steps (the automaton runs steps + 1 calls).
        seeds: automaton-grid voxels seeded with SEED_STATE (main seeds then satellites).
        automaton_key: key of the counter-based random numbers of growth and death.
        necrosis: whether the tumor gets a necrotic core; necrosis_seed draws its start points.
        sigma_a_mm, sigma_b_mm, scale, base, u0, texture_seed: Hu et al. texture T.
        darken_hu: d1, HU removed at full population (T = 1).
        necrosis_hu: d2, HU added back on the necrotic core.
        fat_fill_factor: d / m for the pancreas fat fill (d ~ U(m, 2m)).
        size_type: the size type the steps were drawn for (None: the released step range).
    """

    organ: str
    variant: str
    spacing: tuple[float, float, float]
    box_lo: tuple[int, int, int]
    box_hi: tuple[int, int, int]
    steps: int
    seeds: tuple[tuple[int, int, int], ...]
    automaton_key: int
    necrosis: bool
    necrosis_seed: int
    sigma_a_mm: float
    sigma_b_mm: float
    scale: float
    base: float
    u0: float
    texture_seed: int
    darken_hu: float
    necrosis_hu: float
    fat_fill_factor: float
    size_type: str | None = None
    method: str = "cellular"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["seeds"] = [list(s) for s in self.seeds]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CellularParams":
        try:
            values = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
            values["spacing"] = tuple(float(v) for v in values["spacing"])
            for key in ("box_lo", "box_hi"):
                values[key] = tuple(int(v) for v in values[key])
            values["seeds"] = tuple(tuple(int(v) for v in seed) for seed in values["seeds"])
            for key in ("steps", "automaton_key", "necrosis_seed", "texture_seed"):
                values[key] = int(values[key])
            params = cls(**values)
        except (KeyError, TypeError, ValueError) as exc:
            raise SynthesisInputError(f"cellular tumor params: missing or invalid field ({exc!r})") from exc
        organ_rules(params.organ)
        if params.variant not in VARIANTS:
            raise SynthesisInputError(f"cellular tumor params: variant {params.variant!r}; expected {VARIANTS}")
        return params


def sample_steps(rng: np.random.Generator, rules: OrganRules, size_probs: Mapping[str, float] | None
                 ) -> tuple[int, str | None]:
    """Steps of one tumor: the released range [5, max_steps) or a size type's calibrated range."""
    if size_probs is None:
        return int(rng.integers(5, rules.max_steps)), None
    size_type = sample_size_type(rng, normalise_size_probs(size_probs))
    lo, hi = STEPS_BY_SIZE[size_type]
    return int(rng.integers(lo, hi + 1)), size_type


def _free_voxel(state: np.ndarray, rng: np.random.Generator) -> tuple[int, int, int] | None:
    """A uniform voxel with state 0 (organ tissue, not seeded): rejection sampling on the box,
    then an exhaustive draw when tissue is rare."""
    for _ in range(64):
        voxel = tuple(int(rng.integers(n)) for n in state.shape)
        if state[voxel] == 0:
            return voxel
    free = np.flatnonzero(state == 0)
    if free.size == 0:
        return None
    return tuple(int(v) for v in np.unravel_index(int(free[rng.integers(free.size)]), state.shape))


def sample_seeds(state: np.ndarray, rng: np.random.Generator) -> tuple[tuple[int, int, int], ...]:
    """1-9 main seeds uniform over tissue; each gets, with probability 1/3, 3-9 satellite tries at
    offsets -10..9 per axis that land on unseeded tissue (out of the box: no satellite). Marks
    them in ``state`` (SEED_STATE)."""
    seeds = []
    for _ in range(int(rng.integers(1, 10))):
        voxel = _free_voxel(state, rng)
        if voxel is None:
            break
        state[voxel] = SEED_STATE
        seeds.append(voxel)
        if rng.integers(3) == 0:
            for _ in range(int(rng.integers(3, 10))):
                target = tuple(v + int(rng.integers(-10, 10)) for v in voxel)
                if all(0 <= t < n for t, n in zip(target, state.shape)) and state[target] == 0:
                    state[target] = SEED_STATE
                    seeds.append(target)
    if not seeds:
        raise SynthesisInputError("organ mask: no organ voxel below the vessel threshold to seed a tumor in")
    return tuple(seeds)


def sample_params(state: np.ndarray, rng: np.random.Generator, *, organ: str, variant: str,
                  spacing, box_lo, box_hi, size_probs: Mapping[str, float] | None) -> CellularParams:
    """Draw one tumor's params on the automaton grid ``state`` (seeds are marked in it)."""
    rules = organ_rules(organ)
    steps, size_type = sample_steps(rng, rules, size_probs)
    seeds = sample_seeds(state, rng)
    return CellularParams(
        organ=organ, variant=variant, spacing=tuple(float(s) for s in spacing),
        box_lo=tuple(int(v) for v in box_lo), box_hi=tuple(int(v) for v in box_hi), steps=steps, seeds=seeds,
        automaton_key=int(rng.integers(2**62)),
        necrosis=bool(steps > rules.necrosis_after and rng.integers(3) == 0), necrosis_seed=int(rng.integers(2**31 - 1)),
        sigma_a_mm=float(rng.choice(SIGMA_A_MM)), sigma_b_mm=float(rng.choice(SIGMA_B_MM)),
        scale=float(rng.uniform(0.19, 0.21)), base=float(rng.uniform(0.04, 0.06)), u0=float(rng.uniform(0.5, 0.55)),
        texture_seed=int(rng.integers(2**31 - 1)), darken_hu=float(rng.uniform(65.0, 145.0)),
        necrosis_hu=float(rng.uniform(90.0, 110.0)), fat_fill_factor=float(rng.uniform(1.0, 2.0)),
        size_type=size_type)
