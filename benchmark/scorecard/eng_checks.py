"""The engineering checks that run in this process: replay, consistency across spacings,
exophytic parts, failures on small organs. Each returns a JSON-serialisable dict with ``ok``
(or a rate) and the counts behind it.

A generator is called as the trainer calls it (a batch of one CT, an explicit rng); when it takes
``other_organs`` (Hu), it gets the case's other labelled structures, as ``tumorbench synthesize``
gives it a multi-label mask's other labels.
"""
from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np
from scipy import ndimage

from benchmark.scorecard.eng_cases import EngCase
from benchmark.synthesize import other_organs_kwargs

CHANGE_HU = 1.0  # a voxel "changes" when it moves by more than this
MIN_CHANGED_FRACTION = 0.5  # of a tumor's mask voxels, for "the CT changes there"
FAR_MM = 20.0  # no change farther than this from the tumor mask (DiffTumor's blend blur reaches 16 mm)


def draw(generator, case: EngCase, seed: Sequence[int], organ: np.ndarray | None = None):
    """One tumor on ``case`` with ``default_rng(seed)``: (new CT, mask, params)."""
    organ = case.organ if organ is None else organ
    extra = other_organs_kwargs(generator.__call__, case.other_organs, batch=True)
    out = generator(case.ct[None], organ[None], case.spacing, np.random.default_rng(list(seed)), **extra)
    return np.asarray(out.ct_hu[0]), np.asarray(out.tumor_mask[0], bool), out.params[0]


def replay_check(generator, case: EngCase, n: int, seed: int) -> dict[str, Any]:
    """Synthesize, synthesize again from the same seed, and replay each tumor from its params
    (through JSON, as params.json): all three must be bit-identical."""
    if not callable(getattr(generator, "replay", None)):
        return {"ok": False, "detail": "the generator has no replay(ct, organ_mask, params)"}
    extra = other_organs_kwargs(generator.replay, case.other_organs, batch=False)
    for k in range(n):
        new, mask, params = draw(generator, case, (seed, 100 + k))
        again, again_mask, _ = draw(generator, case, (seed, 100 + k))
        if not (np.array_equal(new, again) and np.array_equal(mask, again_mask)):
            return {"ok": False, "detail": f"draw {k + 1}: the same seed gave another tumor (randomness not from rng?)"}
        try:
            recorded = json.loads(json.dumps(params))
        except (TypeError, ValueError) as exc:
            return {"ok": False, "detail": f"draw {k + 1}: params are not JSON-serialisable ({exc})"}
        replayed, replayed_mask = generator.replay(case.ct, case.organ, recorded, **extra)
        if not (np.array_equal(np.asarray(replayed), new) and np.array_equal(np.asarray(replayed_mask, bool), mask)):
            differ = int(np.count_nonzero(np.asarray(replayed) != new))
            return {"ok": False, "detail": f"draw {k + 1}: replay from params differs in {differ} CT voxels"}
    return {"ok": True, "detail": f"{n} draws: same seed and replay from JSON params bit-identical"}


def tumor_faults(case: EngCase, new: np.ndarray, mask: np.ndarray, params: dict) -> dict[str, bool]:
    """What is wrong with one reported tumor: an empty mask, a CT unchanged on its mask, or a
    change far from it. A tumor whose params say ``empty`` is not reported and has no faults."""
    if params.get("empty", False) is True:
        return {"empty_mask": False, "unchanged": False, "far_change": False}
    changed = np.abs(new - case.ct) > CHANGE_HU
    if not mask.any():
        return {"empty_mask": True, "unchanged": True, "far_change": bool(changed.any())}
    distance = ndimage.distance_transform_edt(~mask, sampling=case.spacing)
    return {"empty_mask": False, "unchanged": bool(changed[mask].mean() < MIN_CHANGED_FRACTION),
            "far_change": bool((changed & (distance > FAR_MM)).any())}


def consistency_check(generator, case: EngCase, n: int, seed: int) -> dict[str, Any]:
    """``n`` tumors on ``case``: each reported one has a non-empty mask, changes the CT on at least
    half of it, and nowhere farther than ``FAR_MM`` from it."""
    counts = {"empty_mask": 0, "unchanged": 0, "far_change": 0}
    reported = 0
    for k in range(n):
        new, mask, params = draw(generator, case, (seed, 200 + k))
        reported += params.get("empty", False) is not True
        for fault, present in tumor_faults(case, new, mask, params).items():
            counts[fault] += present
    return {"spacing_mm": list(case.spacing), "n_tumors": n, "n_reported": reported, **counts,
            "ok": reported > 0 and not any(counts.values())}


def exophytic_check(generator, case: EngCase, n: int, seed: int) -> dict[str, Any]:
    """``n`` tumors: no mask voxel and no changed voxel (> ``CHANGE_HU``) on bone, air/gas or
    another labelled organ. Reports how many tumors had a part outside the organ."""
    forbidden = case.forbidden()
    violations = {kind: 0 for kind in forbidden}
    in_mask = {kind: 0 for kind in forbidden}  # of which labelled tumor (the rest: changed only)
    outside_fractions = []
    for k in range(n):
        new, mask, _ = draw(generator, case, (seed, 300 + k))
        touched = mask | (np.abs(new - case.ct) > CHANGE_HU)
        for kind, where in forbidden.items():
            violations[kind] += int(np.count_nonzero(touched & where))
            in_mask[kind] += int(np.count_nonzero(mask & where))
        if mask.any() and (mask & ~case.organ).any():
            outside_fractions.append(float((mask & ~case.organ).sum() / mask.sum()))
    return {"spacing_mm": list(case.spacing), "n_tumors": n, "n_with_outer_part": len(outside_fractions),
            "outer_fraction_mean": float(np.mean(outside_fractions)) if outside_fractions else 0.0,
            "violations_voxels": violations, "violations_in_mask_voxels": in_mask, "ok": not any(violations.values())}


def small_organ_check(generator, case: EngCase, organs: list[np.ndarray], seed: int) -> dict[str, Any]:
    """Failure rate on small organs: the generator raises, returns an empty mask, or leaves the
    CT unchanged on its mask. Wilson 95% interval (reports.stats.wilson_ci)."""
    from reports.stats import wilson_ci

    kinds = {"raised": 0, "empty_mask": 0, "unchanged": 0}
    for k, organ in enumerate(organs):
        try:
            new, mask, params = draw(generator, case, (seed, 400 + k), organ=organ)
        except Exception:  # noqa: BLE001 (any error is a failure of the generator on this organ)
            kinds["raised"] += 1
            continue
        if not mask.any():
            kinds["empty_mask"] += 1
        elif (np.abs(new - case.ct) > CHANGE_HU)[mask].mean() < MIN_CHANGED_FRACTION:
            kinds["unchanged"] += 1
    failures, n = sum(kinds.values()), len(organs)
    volumes = [float(o.sum() * np.prod(case.spacing) / 1000.0) for o in organs]
    return {"rate": failures / n if n else float("nan"), "n": n, "failures": failures,
            "ci": list(wilson_ci(failures, n)), "by_kind": kinds,
            "organ_ml": [round(min(volumes), 1), round(max(volumes), 1)] if volumes else []}
