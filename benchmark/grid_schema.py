"""Declarative checks of grid tables: one `Field` per key (default, type, allowed values, range).

A table is checked at load (`benchmark.grid.parse_grid`), before any run, file or network contact,
so that ``overlap = "x"`` or ``cross_organ = "false"`` (a string, not a boolean) is one clear error
instead of one FAILED cell each. Adding a field is one line in the table's schema, e.g.
``"min_lesion_mm3": Field(0.0, float, low=0)``.
"""
from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from benchmark.errors import InputError

_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
               list: "a list", dict: "a table"}


@dataclass(frozen=True)
class Field:
    """One grid key. ``kind`` float accepts integers too; ``low``/``high`` are inclusive unless
    ``open_low``/``open_high``; ``choices`` lists the allowed values; ``optional``: None allowed
    (the default of an unset optional key); ``items``: element type of a list."""

    default: Any
    kind: type
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    optional: bool = False
    items: type | None = None

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not allowed (None when it is)."""
        if value is None and self.optional:
            return None
        if not _is(value, self.kind) or (self.items and not all(_is(v, self.items) for v in value)):
            what = _TYPE_WORDS[self.kind] + (f" of {_TYPE_WORDS[self.items].split()[-1]}s" if self.items else "")
            return f"expected {what}" + (" (or leave it out)" if self.optional else "")
        if self.choices and value not in self.choices:
            return f"expected one of {list(self.choices)}"
        low_bad = self.low is not None and (value <= self.low if self.open_low else value < self.low)
        high_bad = self.high is not None and (value >= self.high if self.open_high else value > self.high)
        if low_bad or high_bad:
            return f"expected a value in {'(' if self.open_low else '['}{_bound(self.low)}, " \
                   f"{_bound(self.high)}{')' if self.open_high else ']'}"
        return None


def _is(value: Any, kind: type) -> bool:
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _bound(value: float | None) -> str:
    return "inf" if value is None else f"{value:g}"


def defaults(schema: Mapping[str, Field]) -> dict[str, Any]:
    return {key: f.default for key, f in schema.items()}


def check_table(table: Any, schema: Mapping[str, Field], where: str, section: str) -> dict[str, Any]:
    """``table`` merged over the schema's defaults; InputError on an unknown key or a bad value."""
    if not isinstance(table, dict):
        raise InputError(f"{where}: [{section}] must be a table")
    for key, value in table.items():
        if key not in schema:
            raise InputError(f"{where}: unknown field '{section}.{key}'; expected one of {sorted(schema)}")
        why = schema[key].problem(value)
        if why:
            raise InputError(f"{where}: field '{section}.{key}' has {value!r}; {why}")
    return {**defaults(schema), **table}


# [evaluate], [slurm], [optuna], [mlflow] keys of a grid: default, type, allowed values / range
EVAL_SCHEMA = {
    "cross_organ": Field(False, bool),  # adds Table 3's source -> target cells (benchmark.cell)
    "cross_organ_cases": Field("val", str, choices=("val", "all")),
    "overlap": Field(0.5, float, low=0, high=1, open_high=True),  # sliding-window overlap
    "organ_postprocess": Field(True, bool),
    "previews": Field(3, int, low=0),
    # scoring (docs/metrics.md): the organ tumor calls are kept in, sizes in mm^3
    "organ_filter": Field("reference", str, choices=("reference", "predicted", "none")),
    "min_lesion_mm3": Field(8.0, float, low=0),
    "patient_threshold_mm3": Field(70.0, float, low=0),  # official rule's th (its README example: 30)
}
SLURM_SCHEMA = {
    "partition": Field(None, str, optional=True), "account": Field(None, str, optional=True),
    "constraint": Field(None, str, optional=True), "qos": Field(None, str, optional=True),
    "gres": Field(None, str, optional=True),
    "gpus_per_node": Field(1, int, low=0), "cpus_per_task": Field(8, int, low=1),
    "time_min": Field(720, int, low=1), "mem_gb": Field(64, float, low=0, open_low=True),
    "array_parallelism": Field(16, int, low=1), "signal_delay_s": Field(120, int, low=0),
    "max_num_timeout": Field(3, int, low=0),
    "additional_parameters": Field({}, dict), "setup": Field([], list, items=str),
}
OPTUNA_SCHEMA = {"pruner": Field("median", str, choices=("median", "hyperband", "none")),
                 "n_startup_trials": Field(2, int, low=0), "n_warmup_steps": Field(1, int, low=0)}
MLFLOW_SCHEMA = {"experiment": Field(None, str, optional=True), "tracking_uri": Field(None, str, optional=True),
                 "log_checkpoints": Field(False, bool)}
EVAL_DEFAULTS, SLURM_DEFAULTS, OPTUNA_DEFAULTS = (defaults(s) for s in (EVAL_SCHEMA, SLURM_SCHEMA, OPTUNA_SCHEMA))


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of the parsed grid ``raw`` with each ``KEY=VALUE`` of ``overrides`` set, in order.

    KEY is a TOML dotted key (``train.epochs``, ``train.real.epochs``, ``generators.hu.size_probs``);
    VALUE a TOML value (``5``, ``[48, 48, 32]``, ``"cuda"``, ``{early = 1.0}``), or a bare word taken
    as a string (``device=cuda``). Missing tables on the way are created and the value at KEY is
    replaced. Nothing is checked here: the result goes through the same checks as the file, so a
    bad key or value gives the file's error (`benchmark.grid.parse_grid`).
    """
    out = copy.deepcopy(raw)
    for item in overrides:
        path, value = parse_override(item)
        table = out
        for depth, part in enumerate(path[:-1], start=1):
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise InputError(f"--set {item}: '{'.'.join(path[:depth])}' is {table!r} in the grid, not a table")
        table[path[-1]] = value
    return out


def parse_override(item: str) -> tuple[list[str], Any]:
    """``'train.crop_size=[48,48,32]'`` -> ``(['train', 'crop_size'], [48, 48, 32])``."""
    for split in (i for i, char in enumerate(item) if char == "="):  # the first '=' outside a quoted key
        try:
            key = tomllib.loads(item[:split] + "= 0")
        except tomllib.TOMLDecodeError:
            continue
        path = []
        while isinstance(key, dict):
            (name, key), = key.items()
            path.append(name)
        return path, _override_value(item, item[split + 1:].strip())
    raise InputError(f"--set {item}: expected KEY=VALUE with KEY a dotted grid key, e.g. train.epochs=5")


def _override_value(item: str, text: str) -> Any:
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError as exc:
        if not text or text[0] in "[{\"'" or text[0].isdigit():  # meant as a TOML value: say why it is not one
            raise InputError(f"--set {item}: {text!r} is not a TOML value ({exc}); strings may be bare words "
                             "or quoted, lists [1, 2], tables {a = 1}") from exc
        return text


def effective_toml(raw: dict[str, Any], overrides: Sequence[str], path: Any) -> str:
    """The grid as run (``raw`` with the overrides applied) as TOML text, for the runs' grid.toml:
    the report reads the grid's axes from it, so it must hold the overridden values."""
    import tomli_w

    header = "".join(f"#   --set {item}\n" for item in overrides)
    return (f"# {path or '<grid>'} with these command-line overrides applied (comments of the file dropped):\n"
            f"{header}{tomli_w.dumps(raw)}")
