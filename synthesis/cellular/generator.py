"""Pixel2Cancer-style cellular-automaton tumors as a ``TumorGenerator`` (CPU, numba).

Per tumor: the organ's bounding box is brought to a 1 mm grid (the released code's working
resolution; identity for 1 mm input), tissue/vessel/outside voxels become automaton states and
density levels, seeds are drawn in the organ, the automaton grows (and, for some large tumors,
kills a necrotic core), and the state is mapped back to the input grid and into HU.
``sample`` draws a `CellularParams`; ``synthesize`` is a pure function of (CT, organ, params).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from scipy import ndimage

from synthesis.cellular import automaton
from synthesis.cellular.mapping import map_to_hu_boxes_
from synthesis.cellular.params import (
    SEED_STATE, THRESHOLD, VARIANTS, CellularParams, OrganRules, organ_rules, sample_params,
)
from synthesis.errors import SynthesisInputError
from synthesis.geometry import organ_bbox
from synthesis.protocol import LocalTumor, Piece, SynthesisOutput

GATES = {"paper": automaton.GATE_PAPER, "released": automaton.GATE_RELEASED}


def _is_1mm(spacing: Sequence[float]) -> bool:
    return bool(np.allclose(spacing, 1.0, atol=1e-3))


def to_automaton_grid(ct: np.ndarray, organ: np.ndarray, spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(CT, organ) of a box on the 1 mm grid with the same first voxel (trilinear / nearest)."""
    if _is_1mm(spacing):
        return ct, organ
    spacing = np.asarray(spacing, float)
    shape = tuple(int(np.floor((n - 1) * s + 1e-6)) + 1 for n, s in zip(ct.shape, spacing))
    ct1 = ndimage.affine_transform(ct.astype(np.float32), 1.0 / spacing, output_shape=shape, order=1, mode="nearest")
    organ1 = ndimage.affine_transform(organ.astype(np.uint8), 1.0 / spacing, output_shape=shape, order=0,
                                      mode="nearest")
    return ct1, organ1.astype(bool)


def to_input_grid(values: np.ndarray, shape: Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    """An automaton-grid array sampled (nearest) at the input voxels of a box of ``shape``."""
    if _is_1mm(spacing):
        return values
    return ndimage.affine_transform(values, np.asarray(spacing, float), output_shape=tuple(shape), order=0,
                                    mode="nearest")


def initial_state(ct: np.ndarray, organ: np.ndarray, rules: OrganRules) -> tuple[np.ndarray, np.ndarray]:
    """(state, density) int32 of a box (see `automaton.initial_state`)."""
    return automaton.initial_state(np.asarray(ct, np.float32), np.asarray(organ, np.bool_), rules.lower,
                                   rules.outrange)


def _necrosis(state: np.ndarray, params: CellularParams, rules: OrganRules) -> None:
    """The death rule in place: boundary states reset, every seed dies, 5-19 random points
    around each seed die if full, then int(steps / 7 + 1) death calls spread the core."""
    state[state >= rules.outrange] = 0
    np.minimum(state, THRESHOLD, out=state)
    rng = np.random.default_rng(params.necrosis_seed)
    reach = int(np.floor(params.steps / 10 - 2))
    for seed in params.seeds:
        state[seed] = -1
    for seed in params.seeds:
        count = int(rng.integers(5, 20))
        if reach <= 0:
            continue
        for offset in rng.integers(-reach, reach, size=(count, 3)):
            target = tuple(int(v) for v in np.asarray(seed) + offset)
            if all(0 <= t < n for t, n in zip(target, state.shape)) and state[target] == THRESHOLD:
                state[target] = -1
    automaton.run_death(state, np.int64(params.automaton_key), int(params.steps / 7 + 1), rules.outrange,
                        THRESHOLD, GATES[params.variant])


def grow(state: np.ndarray, density: np.ndarray, params: CellularParams, rules: OrganRules) -> None:
    """Run the automaton in place on seeded ``state`` (seeds already SEED_STATE)."""
    automaton.run_growth(state, density, np.asarray(params.seeds, np.int64).reshape(-1, 3),
                         np.int64(params.automaton_key), params.steps, rules.lower, rules.outrange, THRESHOLD,
                         GATES[params.variant])
    if params.necrosis:
        _necrosis(state, params, rules)


def _box(params: CellularParams, shape: Sequence[int]) -> tuple[slice, ...]:
    if any(lo < 0 or hi > n or lo >= hi for lo, hi, n in zip(params.box_lo, params.box_hi, shape)):
        raise SynthesisInputError(f"cellular params: box {params.box_lo}-{params.box_hi} outside the CT {tuple(shape)}")
    return tuple(slice(lo, hi) for lo, hi in zip(params.box_lo, params.box_hi))


def _domain(ct: np.ndarray, organ: np.ndarray, box: tuple[slice, ...], spacing, rules: OrganRules):
    """(state, density) of the automaton grid of ``box``."""
    return initial_state(*to_automaton_grid(ct[box], organ[box], spacing), rules)


def sample(ct: np.ndarray, organ: np.ndarray, spacing: Sequence[float], rng: np.random.Generator, *, organ_name: str,
           variant: str = "paper", size_probs: Mapping[str, float] | None = None
           ) -> tuple[CellularParams, tuple[np.ndarray, np.ndarray]]:
    """Draw one tumor's params; also returns the seeded automaton (state, density) so
    `apply_tumor_` need not rebuild it."""
    bounds = organ_bbox(organ)
    if bounds is None:
        raise SynthesisInputError("organ mask: empty (no organ voxel to grow a tumor in)")
    lo, hi = bounds[0], bounds[1] + 1
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    state, density = _domain(ct, organ, box, spacing, organ_rules(organ_name))
    params = sample_params(state, rng, organ=organ_name, variant=variant, spacing=spacing, box_lo=lo, box_hi=hi,
                           size_probs=size_probs)
    return params, (state, density)


def tumor_on_box(ct: np.ndarray, organ: np.ndarray, params: CellularParams,
                 seeded: tuple[np.ndarray, np.ndarray] | None = None
                 ) -> list[tuple[tuple[slice, ...], np.ndarray, np.ndarray]]:
    """Grow the tumor on its organ box (the automaton's domain); ``ct`` is not modified.

    Returns:
        [(box, ct, label)] per focus box (disjoint; they hold every changed and tumor voxel): its
        slices in ``ct``, the float32 CT on it with the tumor and the bool tumor label on it.
    """
    box = _box(params, ct.shape)
    ct_box = np.array(ct[box], np.float32, copy=True)
    label, foci = _grow_into_(ct_box, np.asarray(organ[box], bool), params, seeded)
    return [(tuple(slice(b.start + f.start, b.start + f.stop) for b, f in zip(box, focus)), ct_box[focus],
             label[focus]) for focus in foci]


def _grow_into_(ct_box: np.ndarray, organ_box: np.ndarray, params: CellularParams, seeded):
    """Grow the tumor and write it into the organ box's float32 CT in place; (bool label, focus boxes)."""
    rules = organ_rules(params.organ)
    if seeded is None:
        seeded = initial_state(*to_automaton_grid(ct_box, organ_box, params.spacing), rules)
        for seed in params.seeds:
            if not all(0 <= v < n for v, n in zip(seed, seeded[0].shape)):
                raise SynthesisInputError(f"cellular params: seed {seed} outside the automaton grid {seeded[0].shape}")
            seeded[0][seed] = SEED_STATE
    state, density = seeded
    grow(state, density, params, rules)
    return map_to_hu_boxes_(ct_box, organ_box, to_input_grid(state, ct_box.shape, params.spacing),
                            to_input_grid(density, ct_box.shape, params.spacing), params, rules)


def apply_tumor_(ct: np.ndarray, organ: np.ndarray, params: CellularParams,
                 seeded: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[tuple[slice, ...], np.ndarray]:
    """Grow the tumor and write it into ``ct`` (float32) IN PLACE, on its organ box only.

    Returns:
        (box, label): the organ box's slices and the bool tumor label on it.
    """
    box = _box(params, ct.shape)
    return box, _grow_into_(ct[box], organ[box], params, seeded)[0]


def _with_tumor(ct: np.ndarray, organ: np.ndarray, params: CellularParams, seeded=None) -> tuple[np.ndarray, np.ndarray]:
    out = np.array(ct, np.float32, copy=True)
    box, box_label = apply_tumor_(out, organ, params, seeded)
    label = np.zeros(ct.shape, bool)
    label[box] = box_label
    return out, label


def synthesize(ct_hu: np.ndarray, organ_mask: np.ndarray, params: CellularParams) -> tuple[np.ndarray, np.ndarray]:
    """Pure: (new CT float32 in HU, bool tumor mask) from one tumor's params; inputs unchanged
    (whole-CT copies: the full-array path that the box-local ``tumor_on_box`` is tested against)."""
    _check_shapes(ct_hu, organ_mask)
    return _with_tumor(ct_hu, np.asarray(organ_mask, bool), params)


def _check_shapes(ct_hu, organ_mask) -> None:
    if ct_hu.ndim != 3 or ct_hu.shape != organ_mask.shape:
        raise SynthesisInputError(f"CT shape {ct_hu.shape} and organ mask shape {organ_mask.shape}: expected "
                                  "equal 3D shapes")


class CellularGenerator:
    """``TumorGenerator`` of the cellular regime: one freshly grown tumor per crop (CPU)."""

    name = "cellular"
    device = "cpu"  # numba on the CPU: the trainer runs it in its DataLoader workers

    def __init__(self, organ: str, *, size_probs: Mapping[str, float] | None = None, variant: str = "paper"):
        if variant not in VARIANTS:
            raise SynthesisInputError(f"variant {variant!r}: expected one of {VARIANTS}")
        self.organ, self.rules, self.variant = organ, organ_rules(organ), variant
        self.size_probs = dict(size_probs) if size_probs is not None else None
        self._warm = False

    def warm_up(self) -> None:
        """Load the compiled automaton in this process before DataLoader workers fork."""
        if not self._warm:
            grid = np.ogrid[:24, :24, :24]
            organ = sum(((g - 12) / 10.0) ** 2 for g in grid) <= 1
            self._one(np.where(organ, 60.0, 0.0).astype(np.float32), organ, (1.0, 1.0, 1.0), np.random.default_rng(0))
            self._warm = True

    def _one(self, ct: np.ndarray, organ: np.ndarray, spacing, rng) -> LocalTumor:
        organ = np.asarray(organ, bool)
        params, seeded = sample(ct, organ, spacing, rng, organ_name=self.organ, variant=self.variant,
                                size_probs=self.size_probs)
        return LocalTumor(tuple(Piece(*p) for p in tumor_on_box(ct, organ, params, seeded)), params.to_dict())

    def local(self, ct_hu: np.ndarray, organ_mask: np.ndarray, spacing: Sequence[float],
              rng: np.random.Generator) -> list[LocalTumor]:
        """The tumors of ``__call__`` (same rng, same draws), each on its organ box."""
        if ct_hu.ndim != 4 or ct_hu.shape != organ_mask.shape:
            raise SynthesisInputError(f"expected (B, X, Y, Z) CT and organ mask of equal shape, "
                                      f"got {ct_hu.shape} and {organ_mask.shape}")
        return [self._one(c, o, spacing, rng) for c, o in zip(ct_hu, organ_mask)]

    def __call__(self, ct_hu: np.ndarray, organ_mask: np.ndarray, spacing: Sequence[float],
                 rng: np.random.Generator) -> SynthesisOutput:
        """(B, X, Y, Z) crops in HU + organ masks -> SynthesisOutput (one tumor per crop)."""
        return SynthesisOutput.from_local(ct_hu, self.local(ct_hu, organ_mask, spacing, rng))

    def replay(self, ct_hu: np.ndarray, organ_mask: np.ndarray, params: Mapping[str, Any]
               ) -> tuple[np.ndarray, np.ndarray]:
        """Re-grow one tumor from its params dict (as in ``SynthesisOutput.params``)."""
        return synthesize(np.asarray(ct_hu, np.float32), organ_mask, CellularParams.from_dict(params))

    def replay_local(self, ct_hu: np.ndarray, organ_mask: np.ndarray, params: Mapping[str, Any]) -> LocalTumor:
        """``replay`` on the tumor's organ box only (``ct_hu`` untouched)."""
        _check_shapes(ct_hu, organ_mask)
        pieces = tumor_on_box(ct_hu, organ_mask, CellularParams.from_dict(params))
        return LocalTumor(tuple(Piece(*p) for p in pieces), dict(params))
