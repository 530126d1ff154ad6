"""A cell: everything that determines one trained model, hashed into its results folder.

The fields of `Cell` are exactly the MLflow params of the cell's run. Paths (where the
dataset lives, where results go) are deliberately *not* fields: moving a dataset keeps its
fingerprint, so the hash and the finished results stay valid.
"""
from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict, dataclass, fields, replace
from itertools import product
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from benchmark.errors import InputError

FILTER_KEYS = ("organ", "backbone", "fold", "regime", "synth_source", "seed")
# How a cell picks the checkpoint it is evaluated with (grid field ``checkpoint_selection``):
# "final" trains on every training case of its fold and keeps the last epoch (nnU-Net's default,
# the paper's training-set sizes); "inner_val" trains on the fold minus the inner validation split
# and keeps the epoch with the best inner-validation tumor DSC.
SELECTIONS = ("final", "inner_val")
# The keys that name a main-grid cell (synth_source defaults to the organ, seed to the first seed).
CELL_KEYS = ("organ", "backbone", "fold", "regime")


class _FrozenMap(tuple):
    """Sorted (key, value) pairs standing for a nested dict (hashable, thaws back to a dict)."""


def _freeze(value: Any) -> Any:
    """Lists -> tuples and dicts -> sorted pairs (recursively) so cells are hashable."""
    if isinstance(value, _FrozenMap):
        return value
    if isinstance(value, dict):
        return _FrozenMap(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, _FrozenMap):
        return {k: _thaw(v) for k, v in value}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _pairs_to_dict(pairs: tuple) -> dict[str, Any]:
    return {key: _thaw(value) for key, value in pairs}


@dataclass(frozen=True)
class Cell:
    """One grid cell (organ x backbone x fold x regime x seed + settings).

    Attributes:
        organ: the *target* organ: whose dataset the model trains and is tested on.
        synth_source: the organ whose tumor generator makes the synthetic tumors (DiffTumor
            checkpoint / Hu organ variant); "" or the organ itself for the main grid. A
            synthetic cell with ``synth_source != organ`` is a Table 3 off-diagonal cell: it
            trains on the target's healthy CTs only (no real tumors), see `training_roles`.
        hyperparameters: sorted ``(name, value)`` pairs of `models.trainer.TrainConfig` fields.
        generator: sorted ``(name, value)`` pairs; empty for the ``real`` regime, else
            ``name`` (hu|difftumor) plus constructor kwargs (``checkpoint`` dir or "auto").
        selection: "final" (default) or "inner_val", see `SELECTIONS`. A cross-organ cell is
            always "final": selecting on the inner split would show it the target's real tumors.
    """

    organ: str
    backbone: str
    fold: int
    regime: str
    preset: str
    seed: int
    dataset_fingerprint: str
    hyperparameters: tuple[tuple[str, Any], ...] = ()
    generator: tuple[tuple[str, Any], ...] = ()
    synth_source: str = ""
    selection: str = "final"

    def __post_init__(self) -> None:
        object.__setattr__(self, "synth_source", str(self.synth_source or self.organ))
        if self.selection not in SELECTIONS:
            raise InputError(f"cell {self.organ}/{self.regime}: selection {self.selection!r}; "
                             f"expected one of {SELECTIONS}")
        if self.cross_organ and self.selection != "final":
            raise InputError(f"cell {self.run_name}: a cross-organ cell never selects on the target's real tumors "
                             "(selection must be 'final')")
        if self.regime == "real" and self.synth_source != self.organ:
            raise InputError(f"cell {self.organ}/{self.regime}: a real-regime cell has no synth_source "
                             f"(got {self.synth_source!r})")
        for name in ("hyperparameters", "generator"):
            value = getattr(self, name)
            pairs = value.items() if isinstance(value, Mapping) else value
            object.__setattr__(self, name, _freeze({str(k): v for k, v in pairs}))
        object.__setattr__(self, "fold", int(self.fold))
        object.__setattr__(self, "seed", int(self.seed))

    # --- serialisation ------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["hyperparameters"] = _pairs_to_dict(self.hyperparameters)
        out["generator"] = _pairs_to_dict(self.generator)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Cell":
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        missing = names - set(data) - {"hyperparameters", "generator", "synth_source", "selection"}
        if unknown or missing:
            raise InputError(f"cell.json: unknown fields {sorted(unknown)}, missing {sorted(missing)}")
        return cls(**{k: data[k] for k in names if k in data})

    @property
    def hash(self) -> str:
        """12 hex chars of sha256 over canonical JSON (sorted keys, no spaces): stable across
        processes and Python versions, changes when any field changes."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    # --- views ---------------------------------------------------------------------
    @property
    def cross_organ(self) -> bool:
        """True for a Table 3 off-diagonal cell (generator of another organ)."""
        return self.synth_source != self.organ

    @property
    def run_name(self) -> str:
        source = f"←{self.synth_source}" if self.cross_organ else ""
        return f"{self.organ}·{self.backbone}·{self.regime}{source}·f{self.fold}"

    def training_roles(self) -> tuple[str, ...]:
        """cases.csv roles this cell trains on (the paper's regimes, supplement E.2 / Table 7):

        - real: the real-tumor CTs (role ``labeled``) only;
        - hu / difftumor: those plus the healthy CTs, which alone receive synthetic tumors;
        - cross-organ synthetic (``synth_source != organ``): the target's healthy CTs only,
          tumors from the source organ's generator (Table 3, "no real tumors").
        """
        if not self.generator:
            return ("labeled",)
        return ("healthy",) if self.cross_organ else ("labeled", "healthy")

    def hp(self) -> dict[str, Any]:
        return _pairs_to_dict(self.hyperparameters)

    def generator_config(self) -> dict[str, Any]:
        return _pairs_to_dict(self.generator)

    def params(self) -> dict[str, str]:
        """Flat MLflow params: scalar fields, hyperparameters by name, ``generator.<key>``."""
        flat = {k: v for k, v in self.to_dict().items() if k not in ("hyperparameters", "generator")}
        flat.update(self.hp())
        flat.update({f"generator.{k}": v for k, v in self.generator_config().items()})
        return {k: json.dumps(v) if isinstance(v, (list, dict)) else str(v) for k, v in flat.items()}

    def relative_dir(self) -> Path:
        """``<organ>/<backbone>/<regime>[_from_<source>]/fold_<k>__<hash>`` under the results root."""
        regime = f"{self.regime}_from_{self.synth_source}" if self.cross_organ else self.regime
        return Path(self.organ, self.backbone, regime, f"fold_{self.fold}__{self.hash}")

    def with_overrides(self, hyperparameters: Mapping[str, Any] | None = None,
                       generator: Mapping[str, Any] | None = None) -> "Cell":
        """A copy with some hyperparameters / generator kwargs replaced (Optuna trials)."""
        return replace(
            self,
            hyperparameters={**self.hp(), **(hyperparameters or {})},
            generator={**self.generator_config(), **(generator or {})} if self.generator else (),
        )


def cells_from_grid(grid, fingerprints: Mapping[str, str]) -> list[Cell]:
    """Expand a `benchmark.grid.Grid` into cells, organ-major order.

    The main grid is organs x backbones x folds x regimes x seeds. With ``[evaluate]
    cross_organ = true`` it adds, per target organ x backbone x fold x synthetic regime x seed,
    one cell per other source organ (Table 3's synthetic off-diagonal). A ``[tuned."selector"]``
    table overrides the hyperparameters / generator kwargs of the one cell it names (tuning
    results apply to the fold they were tuned on only).

    Args:
        fingerprints: organ -> `Dataset.fingerprint()` of that organ's dataset.
    """
    out = []
    for organ, backbone, fold, regime in product(grid.organs, grid.backbones, grid.folds, grid.regimes):
        for source, seed in product(_sources(grid, organ, regime), grid.seeds):
            cell = Cell(
                organ=organ, backbone=backbone, fold=fold, regime=regime, preset=grid.preset, seed=seed,
                dataset_fingerprint=fingerprints[organ], hyperparameters=grid.train_for(regime),
                generator=_generator_for(grid, regime, source, fold), synth_source=source,
                selection="final" if source != organ else grid.checkpoint_selection,
            )
            out.append(_tuned(grid, cell))
    return out


def _tuned(grid, cell: Cell) -> Cell:
    """``cell`` with the [tuned] values of the selector that names it (organ, backbone, regime,
    fold, and synth_source/seed when the selector gives them)."""
    for selector, values in getattr(grid, "tuned", {}).items():
        only = parse_only(selector)
        only.setdefault("synth_source", {cell.organ})
        if select([cell], only):
            hp = {k: v for k, v in values.items() if not k.startswith("generator.")}
            gen = {k[len("generator."):]: v for k, v in values.items() if k.startswith("generator.")}
            cell = cell.with_overrides(hp, gen)
    return cell


def _sources(grid, organ: str, regime: str) -> list[str]:
    """Generator source organs of a (target organ, regime): its own, plus the others for Table 3."""
    if regime == "real" or not grid.evaluate["cross_organ"]:
        return [organ]
    return [organ] + [o for o in grid.organs if o != organ]


def _generator_for(grid, regime: str, organ: str, fold: int) -> dict[str, Any]:
    """Generator config of ``regime`` made from ``organ`` (the cell's synth_source) for ``fold``."""
    if regime == "real":
        return {}
    kwargs = {k: v for k, v in grid.generators.get(regime, {}).items() if k != "checkpoints"}
    if regime == "difftumor":
        try:
            kwargs["checkpoint"] = checkpoint_for(grid.generators["difftumor"]["checkpoints"], organ, fold)
        except InputError as exc:
            raise InputError(f"{grid.path}: {exc}") from exc
    return {"name": regime, **kwargs}


def checkpoint_for(checkpoints: Any, organ: str, fold: int) -> str:
    """The DiffTumor checkpoint dir of (source organ, fold): "auto", or from the grid's table."""
    if checkpoints == "auto":
        return "auto"
    if organ not in checkpoints:
        raise InputError(f"field 'generators.difftumor.checkpoints' has no {organ!r} entry")
    entry = checkpoints[organ]
    return str(Path(entry if isinstance(entry, str) else entry[fold]).resolve())


def parse_only(text: str | None) -> dict[str, set[str]]:
    """``"organ=liver,regime=hu,regime=real"`` -> ``{"organ": {"liver"}, "regime": {"hu", "real"}}``.

    A key given twice (or ``regime=hu|real``) matches any of its values.
    """
    if not text:
        return {}
    out: dict[str, set[str]] = {}
    for part in text.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or key not in FILTER_KEYS or not value:
            raise InputError(f"--only: {part!r} is not key=value with key in {list(FILTER_KEYS)}")
        out.setdefault(key, set()).update(value.split("|"))
    return out


def select(cells: Iterable[Cell], only: Mapping[str, set[str]]) -> list[Cell]:
    """Cells matching every key of ``only`` (values compared as strings)."""
    return [c for c in cells if all(str(getattr(c, k)) in vals for k, vals in only.items())]


def print_cell_table(cells: Sequence[Cell], results_root, file=None) -> None:
    """One line per cell: organ, backbone, regime, source, fold, seed, hash, done?, results folder."""
    file = file or sys.stdout
    header = (f"{'organ':<9} {'backbone':<11} {'regime':<10} {'source':<9} {'fold':>4} {'seed':>4}  "
              f"{'hash':<12}  {'state':<5}  results")
    print(header, file=file)
    for cell in cells:
        folder = Path(results_root) / cell.relative_dir()
        state = "done" if (folder / "DONE").is_file() else "todo"
        print(f"{cell.organ:<9} {cell.backbone:<11} {cell.regime:<10} {cell.synth_source:<9} {cell.fold:>4} "
              f"{cell.seed:>4}  {cell.hash:<12}  {state:<5}  {folder}", file=file)
    n_cross = sum(c.cross_organ for c in cells)
    print(f"{len(cells)} cells ({len(cells) - n_cross} main + {n_cross} cross-organ)", file=file)
