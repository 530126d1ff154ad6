"""The engineering section of a generator's scorecard (docs/scorecard_engineering.md).

``engineering_section("hu", "kidney")`` builds phantom CTs at several spacings (no downloads),
then measures ms per tumor by size bin beside Hu in the same run, peak memory, bit-identical
replay, failure rate on small organs, determinism across worker counts, consistency (every
reported tumor has a mask, changes the CT there and nowhere far from it) at 1, 2, 3 and
0.8x0.8x5 mm, and what an exophytic part replaces. Each failed property is a refusal reason:
the scorecard does not score a generator whose output it cannot trust.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from benchmark.scorecard.eng_cases import SPACINGS, phantom_case, small_organs
from benchmark.scorecard.eng_checks import FAR_MM, consistency_check, exophytic_check, replay_check, small_organ_check
from benchmark.scorecard.eng_runtime import (
    build, finish_determinism, finish_peak_memory, one_cpu_thread, start_determinism, start_peak_memory,
    timing_section,
)


@dataclass(frozen=True)
class Budget:
    """How many tumors each check draws."""

    timing_repeats: int
    replay: int
    consistency: int
    exophytic: int
    small_organs: int
    determinism: int
    timing_spacing: str
    timing_budget_s: float  # generator seconds per size bin after which timing stops (>= 1 tumor)


QUICK = Budget(timing_repeats=6, replay=1, consistency=2, exophytic=4, small_organs=8, determinism=2,
               timing_spacing="2mm", timing_budget_s=1.0)
FULL = Budget(timing_repeats=10, replay=3, consistency=6, exophytic=12, small_organs=40, determinism=4,
              timing_spacing="1mm", timing_budget_s=60.0)
EXOPHYTIC_SIZES = {"medium": 0.5, "large": 0.5}  # the size types that may leave the organ (kidney)


def _takes_size_probs(name: str) -> bool:
    from synthesis.registry import factory_kwargs, get_entry

    accepted = factory_kwargs(get_entry(name).load())
    return "size_probs" in accepted or "**" in accepted


def _guarded(check: Callable[..., dict], *args) -> dict[str, Any]:
    """A check's result, or a failed one naming the error the generator raised."""
    try:
        return check(*args)
    except Exception as exc:  # noqa: BLE001 (a generator that raises fails the check; the card says why)
        return {"ok": False, "detail": f"raised {type(exc).__name__}: {exc}"}


def engineering_section(generator: str, organ: str, *, generator_kwargs: dict | None = None,
                        seed: int = 0, quick: bool = False, progress: bool = True) -> dict:
    """JSON-serialisable engineering measures of registered generator ``generator`` on ``organ``.

    Keys: 'timing' (per size bin: ms per tumor, Hu's ms in the same run, ratio), 'peak_memory_mb'
    (peak RSS of a fresh process drawing one tumor per size bin; details in 'peak_memory'),
    'replay' {'ok', 'detail'}, 'small_organ_failure' {'rate', 'n', 'ci', ...},
    'determinism_workers' {'ok', 'detail'}, 'consistency' {spacing label: {..., 'ok'}},
    'exophytic' {..., 'ok'}, 'refusals' (one reason per failed property; non-empty: do not score).

    Raises:
        SynthesisInputError: unknown generator, bad kwargs, missing weights (before any check).
    """
    from tqdm.auto import tqdm

    kwargs, budget = dict(generator_kwargs or {}), QUICK if quick else FULL
    main = build(generator, organ, kwargs)  # bad input fails here, before anything runs
    sized = _takes_size_probs(generator)
    cases = {label: phantom_case(organ, spacing, seed) for label, spacing in SPACINGS.items()}
    timed, base = cases[budget.timing_spacing], cases["2mm"]
    # the other processes start first and run beside the checks here
    pool, memory = start_peak_memory(generator, organ, kwargs, timed, sized, seed)
    workers = start_determinism(generator, organ, kwargs, [base] * budget.determinism, seed)
    steps = [
        ("timing", lambda: timing_section(generator, organ, kwargs, timed, budget.timing_repeats, seed, sized,
                                          budget.timing_budget_s)),
        ("replay", lambda: _guarded(replay_check, main, base, budget.replay, seed)),
        ("small_organ_failure", lambda: small_organ_check(main, base, small_organs(base, budget.small_organs, seed),
                                                          seed)),
        ("consistency", lambda: {label: _consistency(main, case, budget.consistency, seed)
                                 for label, case in cases.items()}),
        ("exophytic", lambda: _guarded(lambda: exophytic_check(
            build(generator, organ, kwargs, EXOPHYTIC_SIZES) if sized else main, base, budget.exophytic, seed))),
        ("determinism_workers", lambda: _guarded(finish_determinism, main, workers)),
        ("peak_memory", lambda: _guarded(finish_peak_memory, pool, memory, timed)),
    ]
    out: dict[str, Any] = {"generator": generator, "organ": organ, "seed": seed, "quick": quick,
                           "timing_case": {"spacing_mm": list(timed.spacing), "shape": list(timed.ct.shape)}}
    out["elapsed_s"] = {}  # wall seconds per check (the memory process runs beside the others)
    with one_cpu_thread():
        for key, run in tqdm(steps, desc=f"engineering {generator}/{organ}", unit="check", disable=not progress):
            start = time.perf_counter()
            out[key] = run()
            out["elapsed_s"][key] = round(time.perf_counter() - start, 2)
    out["peak_memory_mb"] = out["peak_memory"].get("peak_rss_mb")  # None when the measurement failed
    out["refusals"] = refusals(out)
    return out


def _consistency(generator, case, n: int, seed: int) -> dict[str, Any]:
    result = _guarded(consistency_check, generator, case, n, seed)
    model = getattr(generator, "model_spacing", None)  # DiffTumor: the checkpoint's spacing
    if model is not None:
        result["checkpoint_spacing_mm"] = list(model)
    return result


def refusals(section: dict[str, Any]) -> list[str]:
    """One sentence per failed property of an engineering section (empty: the card may score it)."""
    reasons = []
    if not section["replay"]["ok"]:
        reasons.append(f"replay: {section['replay']['detail']}")
    if not section["determinism_workers"]["ok"]:
        reasons.append(f"determinism across worker counts: {section['determinism_workers']['detail']}")
    for label, result in section["consistency"].items():
        if result["ok"]:
            continue
        if "detail" in result:
            reasons.append(f"consistency at {label}: {result['detail']}")
        else:
            reasons.append(f"consistency at {label}: of {result['n_tumors']} tumors {result['n_reported']} reported; "
                           f"{result['empty_mask']} with an empty mask, {result['unchanged']} with the CT unchanged "
                           f"on its mask, {result['far_change']} changing the CT farther than {FAR_MM:g} mm away")
    exophytic = section["exophytic"]
    if not exophytic["ok"]:
        detail = exophytic.get("detail") or ", ".join(
            f"{kind} {count} voxels" for kind, count in exophytic["violations_voxels"].items() if count)
        reasons.append(f"exophytic parts replace what a tumor never replaces: {detail}")
    return reasons
