"""The grid fields of the protocol: DiffTumor checkpoints per organ and fold, and the [tuned]
tables that apply a tuning study's values to the one cell (fold) it tuned (`benchmark.grid`)."""
from __future__ import annotations

from typing import Any

from benchmark.data.layout import ORGANS
from benchmark.errors import InputError


def checkpoints_table(value: Any, folds: tuple[int, ...], where: str) -> Any:
    """``"auto"``, or organ -> checkpoint dir (every fold) or organ -> {fold: dir}; with a
    per-fold table every fold of the grid needs its entry (a generator must not see the test
    fold of the cell it serves, so one fold's weights are not reused for another)."""
    name = "generators.difftumor.checkpoints"
    if value == "auto":
        return value
    if not isinstance(value, dict):
        raise InputError(f"{where}: field {name!r} must be \"auto\" or a table organ = \"dir\" or "
                         f"organ = {{0 = \"dir\", 1 = ...}}, got {value!r}")
    out: dict[str, Any] = {}
    for organ, entry in value.items():
        if organ not in ORGANS:
            raise InputError(f"{where}: field {name!r} has {organ!r}; expected one of {list(ORGANS)}")
        if isinstance(entry, str):
            out[organ] = entry
            continue
        if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
            raise InputError(f"{where}: field '{name}.{organ}' must be a checkpoint dir string or a table "
                             f"fold = \"dir\" (folds 0-4), got {entry!r}")
        bad = [k for k in entry if not (str(k).isdigit() and int(k) in range(5))]
        if bad:
            raise InputError(f"{where}: field '{name}.{organ}' has keys {bad}; expected fold numbers 0-4")
        missing = [f for f in folds if str(f) not in {str(k) for k in entry}]
        if missing:
            raise InputError(f"{where}: field '{name}.{organ}' has no checkpoint for folds {missing} of the grid")
        out[organ] = {int(k): v for k, v in entry.items()}
    return out


def tuned_tables(table: Any, train_keys: tuple[str, ...], where: str) -> dict[str, dict[str, Any]]:
    """[tuned."organ=..,backbone=..,regime=..,fold=.."] tables: a tuning study's best values,
    applied to that one cell (its fold) only. Keys as [optuna.space]: [train] fields or
    ``generator.<kwarg>``."""
    if not isinstance(table, dict):
        raise InputError(f"{where}: [tuned] must hold tables [tuned.\"organ=..,backbone=..,regime=..,fold=..\"]")
    from benchmark.cell import CELL_KEYS, parse_only

    out = {}
    for selector, values in table.items():
        only = parse_only(selector)
        if any(k not in only or len(only[k]) != 1 for k in CELL_KEYS) or not isinstance(values, dict):
            raise InputError(f"{where}: [tuned.{selector!r}]: expected a selector naming one value of each of "
                             f"{list(CELL_KEYS)} and a table of values")
        for key in values:
            if key not in train_keys and not key.startswith("generator."):
                raise InputError(f"{where}: field 'tuned.{selector}.{key}': expected a [train] field or "
                                 "'generator.<kwarg>'")
        out[selector] = dict(values)
    return out
