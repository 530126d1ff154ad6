"""Experiment grids: a TOML file naming datasets, backbones, folds, regimes and settings.

A grid expands into cells (one trained model each, see `benchmark.cell`). Example
(`grids/demo.toml` has a commented one)::

    name = "demo"            # MLflow experiment name
    preset = "tiny"          # tiny | paper (backbone size)
    seed = 0                 # or seeds = [0, 1, 2]: each seed its own cell
    device = "cpu"
    results_dir = "results"
    organs = ["liver"]       # trained organs (default: every [datasets] key)
    backbones = ["unet"]
    folds = [0]
    regimes = ["real", "hu"]
    checkpoint_selection = "final"  # "final" (default, nnU-Net) | "inner_val"

    [datasets]               # organ -> dataset folder (evaluation targets too)
    liver = "demo_out/phantom/liver"

    [train]                  # models.trainer.TrainConfig fields
    epochs = 2
    crop_size = [48, 48, 32]

    [train.real]             # per-regime overrides (real | hu | difftumor)
    epochs = 3

    [evaluate]
    cross_organ = true       # adds Table 3's source -> target cells (see benchmark.cell)
    organ_filter = "reference"   # reference | predicted | none (docs/metrics.md)
    min_lesion_mm3 = 8.0     # smallest lesion counted
    patient_threshold_mm3 = 70.0  # official patient-level rule's th (README example: 30)

    [generators.difftumor]   # checkpoints: "auto" (trained per source organ and fold),
    checkpoints = {liver = {0 = "ckpt/liver_f0", 1 = "ckpt/liver_f1"}}  # or organ = "dir" (all folds)
    [tuned."organ=liver,backbone=unet,regime=hu,fold=0"]  # `tumorbench tune` output: that cell only
    lr = 0.002

Relative paths are resolved against the current working directory.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from benchmark.errors import InputError
from benchmark.grid_protocol import checkpoints_table, tuned_tables
from benchmark.grid_schema import (EVAL_DEFAULTS, EVAL_SCHEMA, MLFLOW_SCHEMA, OPTUNA_DEFAULTS,  # noqa: F401
                                   OPTUNA_SCHEMA, SLURM_DEFAULTS, SLURM_SCHEMA, apply_overrides, check_table,
                                   effective_toml)
from tumorbench_common.names import check_name

ORGANS = ("liver", "pancreas", "kidney")
REAL = "real"  # the regime without synthesis; every other regime is a registered generator
PRESETS = ("tiny", "paper")
BACKBONES = ("unet", "nnunet", "swin_unetr")
# models.trainer.TrainConfig fields a grid may set (backbone/size/seed come from the cell).
TRAIN_KEYS = (
    "crop_size", "batch_size", "lr", "weight_decay", "epochs", "iters_per_epoch", "val_every",
    "warmup_epochs", "synth_prob", "num_workers", "amp", "window", "val_overlap",
    "rot90_prob", "shift_prob", "shift_offset", "pos_fraction",
)
TRAIN_DEFAULTS: dict[str, Any] = {
    "tiny": {"epochs": 2, "iters_per_epoch": 4, "val_every": 1, "batch_size": 1,
             "crop_size": [48, 48, 32], "lr": 1e-3, "weight_decay": 1e-5, "synth_prob": 0.5},
    # DiffTumor supplement E.2 (docs/protocol.md); no iters_per_epoch: an epoch is one pass
    # over the training scans (one random crop each), as the official trainer.
    "paper": {"epochs": 2000, "val_every": 50, "batch_size": 2, "warmup_epochs": 100,
              "crop_size": [96, 96, 96], "lr": 2e-4, "weight_decay": 1e-5, "synth_prob": 0.5,
              "window": [-175.0, 250.0], "val_overlap": 0.5},
}
DEVICE_PATTERN = r"cpu|cuda(:\d+)?|mps"  # checked against the machine before a local run (benchmark.runner)


@dataclass(frozen=True)
class Grid:
    """A validated grid (see module docstring). Build with `load_grid` / `parse_grid`."""

    name: str
    source: str  # the TOML text as run, overrides applied (logged as the parent run's grid.toml)
    path: Path | None
    datasets: dict[str, Path]
    organs: tuple[str, ...]
    backbones: tuple[str, ...]
    folds: tuple[int, ...]
    regimes: tuple[str, ...]
    preset: str
    seed: int  # the first of ``seeds`` (Optuna sampler, defaults)
    device: str
    results_dir: Path
    train: dict[str, Any]
    generators: dict[str, dict[str, Any]]
    evaluate: dict[str, Any]
    slurm: dict[str, Any]
    mlflow: dict[str, Any]
    optuna: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    train_by_regime: dict[str, dict[str, Any]] = field(default_factory=dict)
    checkpoint_selection: str = "final"
    tuned: dict[str, dict[str, Any]] = field(default_factory=dict)  # cell selector -> overrides
    overrides: tuple[str, ...] = ()  # command-line `--set KEY=VALUE`s applied over the file, in order

    def train_for(self, regime: str) -> dict[str, Any]:
        """[train] merged with its [train.<regime>] overrides (e.g. paper epochs per regime)."""
        return {**self.train, **self.train_by_regime.get(regime, {})}

    def eval_organs(self, organ: str, regime: str = "real", synth_source: str | None = None) -> tuple[str, ...]:
        """Organs a cell is evaluated on (its own first).

        Only a real-regime cell is also evaluated on the other organs (Table 3's real rows:
        the source model on the target's test fold); synthetic rows come from the
        cross-organ cells (`benchmark.cell.cells_from_grid`), evaluated on their own organ.
        """
        if regime != "real" or not self.evaluate["cross_organ"] or (synth_source or organ) != organ:
            return (organ,)
        return (organ, *[o for o in self.datasets if o != organ])


def load_grid(path: str | Path, overrides: Sequence[str] = ()) -> Grid:
    """Read and validate a grid TOML file; InputError names the file and field on problems.

    ``overrides``: ``KEY=VALUE`` strings (``tumorbench run --set``, see
    `benchmark.grid_schema.apply_overrides`) set over the file before it is checked.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: grid file not found")
    text = path.read_text()
    return parse_grid(text, path, overrides)


def parse_grid(text: str, path: Path | None = None, overrides: Sequence[str] = ()) -> Grid:
    raw, text, where = _read(text, path, overrides)
    known = {"name", "preset", "seed", "seeds", "device", "results_dir", "organs", "backbones", "folds",
             "regimes", "datasets", "train", "generators", "evaluate", "slurm", "mlflow", "optuna",
             "checkpoint_selection", "tuned"}
    _no_unknown(raw, known, where, "")
    datasets = _datasets(raw, where)
    preset = _choice(raw.get("preset", "tiny"), PRESETS, where, "preset")
    organs = tuple(_str_list(raw, "organs", list(datasets), where))
    seeds = _seeds(raw, where)
    for organ in organs:
        if organ not in datasets:
            raise InputError(f"{where}: field 'organs' lists {organ!r} but [datasets] has no {organ!r} path")
    regimes = tuple(_choice(r, _regime_names(), where, "regimes") for r in _str_list(raw, "regimes", [REAL], where))
    folds = tuple(_folds(raw, where))
    return Grid(
        name=_name(raw, where), source=text, path=path, datasets=datasets, organs=organs,
        backbones=tuple(_choice(b, BACKBONES, where, "backbones") for b in _str_list(raw, "backbones", ["unet"], where)),
        folds=folds,
        regimes=regimes,
        preset=preset, seed=seeds[0], seeds=seeds,
        device=_device(raw, where), results_dir=Path(_string(raw, "results_dir", "results", where)).resolve(),
        train=_train({k: v for k, v in raw.get("train", {}).items() if k not in _regime_names()}, preset, where),
        train_by_regime=_train_by_regime(raw.get("train", {}), preset, where),
        generators=_generators(raw.get("generators", {}), regimes, folds, where),
        evaluate=_evaluate(check_table(raw.get("evaluate", {}), EVAL_SCHEMA, where, "evaluate")),
        slurm=check_table(raw.get("slurm", {}), SLURM_SCHEMA, where, "slurm"),
        mlflow=_mlflow(raw.get("mlflow", {}), where),
        optuna=_optuna(raw.get("optuna", {}), where),
        checkpoint_selection=_choice(raw.get("checkpoint_selection", "final"), ("final", "inner_val"), where,
                                     "checkpoint_selection"),
        tuned=tuned_tables(raw.get("tuned", {}), TRAIN_KEYS, where), overrides=tuple(overrides),
    )


def _read(text: str, path: Path | None, overrides: Sequence[str]) -> tuple[dict[str, Any], str, str]:
    """(the parsed TOML with the ``--set`` overrides applied, the grid's text as run, the error prefix).

    The overrides are checked by `parse_grid` exactly as if the file said so; errors name them too."""
    where = str(path) if path else "<grid>"
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{where}: not valid TOML ({exc})") from exc
    if overrides:
        raw = apply_overrides(raw, overrides)
        text, where = effective_toml(raw, overrides, path), f"{where} with --set {' '.join(overrides)}"
    for section in ("train", "generators", "optuna"):  # the other sections check their own type
        if not isinstance(raw.get(section, {}), dict):
            raise InputError(f"{where}: [{section}] must be a table, got {raw[section]!r}")
    return raw, text, where


def _no_unknown(table: dict, known, where: str, prefix: str) -> None:
    for key in table:
        if key not in known:
            raise InputError(f"{where}: unknown field '{prefix}{key}'; expected one of {sorted(known)}")


def _name(raw: dict, where: str) -> str:
    if not isinstance(raw.get("name"), str) or not raw["name"].strip():
        raise InputError(f"{where}: field 'name' missing or empty (expected the experiment name)")
    return check_name(raw["name"], f"{where}: field 'name'")


def _string(raw: dict, key: str, default: str, where: str) -> str:
    if not isinstance(raw.get(key, default), str):
        raise InputError(f"{where}: field {key!r} must be a string, got {raw[key]!r}")
    return raw.get(key, default)


def _device(raw: dict, where: str) -> str:
    device = _string(raw, "device", "cpu", where)
    if not re.fullmatch(DEVICE_PATTERN, device):
        raise InputError(f"{where}: field 'device' has {device!r}; expected cpu, cuda, cuda:N or mps")
    return device


def _datasets(raw: dict, where: str) -> dict[str, Path]:
    table = raw.get("datasets")
    if not isinstance(table, dict) or not table:
        raise InputError(f"{where}: section [datasets] missing (expected organ = \"path\" lines)")
    out = {}
    for organ, value in table.items():
        _choice(organ, ORGANS, where, "datasets")
        if not isinstance(value, str):
            raise InputError(f"{where}: field 'datasets.{organ}' must be a path string")
        out[organ] = Path(value).expanduser().resolve()
    return out


def _choice(value: Any, allowed, where: str, field_name: str):
    if value not in allowed:
        raise InputError(f"{where}: field {field_name!r} has {value!r}; expected one of {list(allowed)}")
    return value


def _int(value: Any, where: str, field_name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{where}: field {field_name!r} must be an integer, got {value!r}")
    return value


def _str_list(raw: dict, key: str, default: list[str], where: str) -> list[str]:
    value = raw.get(key, default)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise InputError(f"{where}: field {key!r} must be a non-empty list of strings, got {value!r}")
    return list(dict.fromkeys(value))


def _folds(raw: dict, where: str) -> list[int]:
    value = raw.get("folds", [0])
    if isinstance(value, int):
        value = [value]
    if not isinstance(value, list) or not value:
        raise InputError(f"{where}: field 'folds' must be a non-empty list of integers 0-4")
    for fold in value:
        if _int(fold, where, "folds") not in range(5):
            raise InputError(f"{where}: field 'folds' has {fold}; expected integers 0-4")
    return list(dict.fromkeys(value))


def _seeds(raw: dict, where: str) -> tuple[int, ...]:
    if "seed" in raw and "seeds" in raw:
        raise InputError(f"{where}: give 'seed' or 'seeds', not both")
    value = raw.get("seeds", [raw.get("seed", 0)])
    if not isinstance(value, list) or not value:
        raise InputError(f"{where}: field 'seeds' must be a non-empty list of integers, got {value!r}")
    return tuple(dict.fromkeys(_int(v, where, "seeds") for v in value))


def _train_by_regime(table: dict, preset: str, where: str) -> dict[str, dict[str, Any]]:
    """[train.<regime>] tables: overrides validated like [train] itself."""
    out, names = {}, _regime_names()
    for regime in names:
        sub = table.get(regime)
        if sub is None:
            continue
        if not isinstance(sub, dict):
            raise InputError(f"{where}: field 'train.{regime}' must be a table of [train] fields")
        _no_unknown(sub, TRAIN_KEYS, where, f"train.{regime}.")
        base = {k: v for k, v in table.items() if k not in names}
        _train({**base, **sub}, preset, where)
        out[regime] = dict(sub)
    return out


def _train(table: dict, preset: str, where: str) -> dict[str, Any]:
    _no_unknown(table, TRAIN_KEYS, where, "train.")
    merged = {**TRAIN_DEFAULTS[preset], **table}
    for key in ("epochs", "iters_per_epoch", "val_every", "batch_size"):
        if key in merged and (_int(merged[key], where, f"train.{key}") < 1):
            raise InputError(f"{where}: field 'train.{key}' must be >= 1, got {merged[key]}")
    crop = merged.get("crop_size")
    if not (isinstance(crop, list) and len(crop) == 3 and all(isinstance(c, int) and c >= 16 for c in crop)):
        raise InputError(f"{where}: field 'train.crop_size' must be 3 integers >= 16, got {crop!r}")
    for key in ("lr", "weight_decay", "synth_prob", *(k for k in ("rot90_prob", "shift_prob", "shift_offset",
                                                                   "pos_fraction") if k in merged)):
        if not isinstance(merged.get(key), (int, float)) or merged[key] < 0:
            raise InputError(f"{where}: field 'train.{key}' must be a number >= 0, got {merged.get(key)!r}")
    if merged["synth_prob"] > 1:
        raise InputError(f"{where}: field 'train.synth_prob' must be in [0, 1], got {merged['synth_prob']}")
    return merged


def _regime_names() -> tuple[str, ...]:
    from synthesis.registry import registered_names

    return (REAL, *registered_names())


def _generators(table: dict, regimes: tuple[str, ...], folds: tuple[int, ...], where: str) -> dict[str, dict[str, Any]]:
    """Kwargs per generator; each regime's factory is loaded and its kwargs checked (before any run)."""
    from synthesis.errors import SynthesisInputError
    from synthesis.registry import check_kwargs

    _no_unknown(table, _regime_names()[1:], where, "generators.")
    if any(not isinstance(kwargs, dict) for kwargs in table.values()):
        raise InputError(f"{where}: each [generators.NAME] must be a table of keyword arguments")
    out = {name: dict(kwargs) for name, kwargs in table.items()}
    for name in dict.fromkeys([*out, *(r for r in regimes if r != REAL)]):
        try:
            check_kwargs(name, {k: v for k, v in out.get(name, {}).items() if k != "checkpoints"})
        except SynthesisInputError as exc:
            raise InputError(f"{where}: [generators.{name}]: {exc}") from exc
    out.setdefault("difftumor", {})
    out["difftumor"]["checkpoints"] = checkpoints_table(out["difftumor"].get("checkpoints", "auto"), folds, where)
    return out


def _evaluate(merged: dict[str, Any]) -> dict[str, Any]:
    """The checked [evaluate] table with its sizes as floats (mm^3), so 8 and 8.0 name one setting."""
    return {**merged, **{key: float(merged[key]) for key in ("min_lesion_mm3", "patient_threshold_mm3")}}


def _mlflow(table: dict, where: str) -> dict[str, Any]:
    out = check_table(table, MLFLOW_SCHEMA, where, "mlflow")
    if out["experiment"] is not None:
        check_name(out["experiment"], f"{where}: field 'mlflow.experiment'")
    return {k: v for k, v in out.items() if v is not None}


def _optuna(table: dict, where: str) -> dict[str, Any]:
    merged = check_table({k: v for k, v in table.items() if k != "space"}, OPTUNA_SCHEMA, where, "optuna")
    if not isinstance(table.get("space", {}), dict):
        raise InputError(f"{where}: [optuna.space] must be a table")
    merged["space"] = {k: _space_entry(k, v, where) for k, v in table.get("space", {}).items()}
    return merged


def _space_entry(key: str, spec: Any, where: str) -> dict[str, Any]:
    """One search dimension: ``{low, high, log?, step?}`` (int if both ints) or ``{choices}``.

    Keys are `[train]` fields or ``generator.<kwarg>`` (passed to the generator constructor).
    """
    name = f"optuna.space.{key}"
    if key not in TRAIN_KEYS and not key.startswith("generator."):
        raise InputError(f"{where}: field {name!r}: expected a [train] field {list(TRAIN_KEYS)} "
                         "or 'generator.<kwarg>'")
    if not isinstance(spec, dict):
        raise InputError(f"{where}: field {name!r} must be a table {{low, high, log}} or {{choices}}")
    if "choices" in spec:
        if not isinstance(spec["choices"], list) or not spec["choices"] or set(spec) != {"choices"}:
            raise InputError(f"{where}: field {name!r}: 'choices' must be a non-empty list (and alone)")
        return dict(spec)
    _no_unknown(spec, ("low", "high", "log", "step"), where, f"{name}.")
    low, high = spec.get("low"), spec.get("high")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or low >= high:
        raise InputError(f"{where}: field {name!r} needs numbers low < high, got low={low!r} high={high!r}")
    if spec.get("log") and low <= 0:
        raise InputError(f"{where}: field {name!r}: log scale needs low > 0, got {low}")
    return {"log": False, **spec}
