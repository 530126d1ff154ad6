"""Command-line values of `tumorbench scorecard` turned into the API's arguments (checked before any run)."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from benchmark.errors import InputError
from benchmark.realism_collect import parse_checkpoints
from benchmark.scorecard.realism import RealismSettings
from benchmark.scorecard.run import ScorecardSettings


def _organ_of(path: str) -> str:
    from benchmark.data import Dataset

    return Dataset.open(path).organ


def select_datasets(paths: Sequence[str], organs: Sequence[str] | None) -> list[str]:
    """``paths`` whose organ is in ``organs`` (all when None); an organ no dataset has is an error."""
    if not organs:
        return list(paths)
    by_organ = {path: _organ_of(path) for path in paths}
    missing = sorted(set(organs) - set(by_organ.values()))
    if missing:
        raise InputError(f"--organ {', '.join(missing)}: no --dataset of that organ (have {sorted(set(by_organ.values()))})")
    return [p for p, organ in by_organ.items() if organ in organs]


def parse_generator_args(items: Sequence[str] | None, generators: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``["sphere.radius_mm=[4, 8]"]`` -> ``{"sphere": {"radius_mm": [4, 8]}}``."""
    out: dict[str, dict[str, Any]] = {}
    for item in items or ():
        target, sep, raw = item.partition("=")
        name, dot, key = target.partition(".")
        if not sep or not dot or not key:
            raise InputError(f"--generator-arg {item!r}: expected NAME.KEY=JSON, e.g. 'sphere.radius_mm=[4, 8]'")
        if name not in generators:
            raise InputError(f"--generator-arg {item!r}: {name!r} is not one of the scored generators {list(generators)}")
        try:
            out.setdefault(name, {})[key] = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InputError(f"--generator-arg {item!r}: value is not JSON ({exc.msg})") from exc
    return out


def generator_kwargs(generators: Sequence[str], datasets: Sequence[str], checkpoints: Sequence[str] | None,
                     items: Sequence[str] | None, device: str) -> dict[str, dict[str, dict[str, Any]]]:
    """generator -> organ -> factory kwargs (device, the organ's checkpoint, --generator-arg values),
    each checked against the factory's parameters."""
    from synthesis.errors import SynthesisInputError
    from synthesis.registry import check_kwargs, factory_kwargs, get_entry

    ckpt, extra = parse_checkpoints(checkpoints), parse_generator_args(items, generators)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name in generators:
        try:
            check_kwargs(name, extra.get(name, {}))
        except SynthesisInputError as exc:
            raise InputError(f"--generator-arg: {exc}") from exc
        accepted = factory_kwargs(get_entry(name).load())
        for organ in {_organ_of(p) for p in datasets}:
            kwargs = {"device": device, **extra.get(name, {})}
            if organ in ckpt and ("checkpoint" in accepted or "**" in accepted):
                kwargs["checkpoint"] = str(Path(ckpt[organ]).resolve())
            out.setdefault(name, {})[organ] = kwargs
    return out


def settings_from(quick: bool, n: int | None, draws: int | None, fold: int, seed: int, jobs: int) -> ScorecardSettings:
    if (n is not None and n < 2) or (draws is not None and draws < 1) or jobs < 1:
        raise InputError(f"--n {n} / --draws {draws} / --jobs {jobs}: expected n >= 2, draws >= 1, jobs >= 1")
    base = ScorecardSettings.quick_profile(seed, fold) if quick else ScorecardSettings(fold=fold, seed=seed)
    realism = replace(base.realism, jobs=jobs, **({"n": n} if n is not None else {}))
    return replace(base, realism=realism, **({"n_draws": draws} if draws is not None else {}))
