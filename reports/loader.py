"""Read a finished (or partial) grid from MLflow: cell runs, parent runs, summary.json artifacts.

Follows docs/contracts.md (Runner / MLflow): cell runs carry tag ``tumorbench.kind=cell``, params
``organ, backbone, fold, regime, seed, ...`` (the Cell's fields) and tags ``tumorbench.results_dir``,
``tumorbench.dataset_dir``, ...; the parent run of a grid invocation has ``tumorbench.kind=grid``
and artifact ``grid.toml``. Runs of stores written before the ``tumorbench.`` namespace (cell fields
as tags, bare tag names) are read too (`RunInfo.tag`, `Cell._field`).
"""
from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tumorbench_common.errors import InputError
from tumorbench_common.mlflow_tags import KIND, RESULTS_DIR, RUN_NAME, read_tag
from tumorbench_common.tracking_uri import resolve_tracking_uri

REQUIRED_TAGS = ("organ", "backbone", "regime", "fold")


@dataclass
class RunInfo:
    """One MLflow run flattened to plain Python (times in ms since epoch)."""

    run_id: str
    experiment_id: str
    name: str
    status: str
    start_time: int | None
    end_time: int | None
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]

    def tag(self, key: str, default: str = "") -> str:
        """Tag ``key`` (a `tumorbench_common.mlflow_tags` name), or its pre-namespace name."""
        return read_tag(self.tags, key, default)


@dataclass
class Cell(RunInfo):
    """A grid cell run (organ x backbone x regime x fold)."""

    def _field(self, name: str, default: str = "?") -> str:
        """A Cell field: a param (older stores: also a tag)."""
        return self.params.get(name, self.tags.get(name, default))

    @property
    def organ(self) -> str:
        return self._field("organ")

    @property
    def backbone(self) -> str:
        return self._field("backbone")

    @property
    def regime(self) -> str:
        return self._field("regime")

    def _integer(self, name: str, default: str) -> int:
        value = self._field(name, default)
        try:
            return int(value)
        except ValueError:
            raise InputError(f"MLflow run {self.run_id}: {name!r} is {value!r}, expected an integer") from None

    @property
    def fold(self) -> int:
        return self._integer("fold", "")

    @property
    def seed(self) -> int:
        """Training seed (MLflow param ``seed``); runs that predate the param count as seed 0."""
        return self._integer("seed", "0")

    @property
    def source_organ(self) -> str:
        """Organ whose generator made the training tumors (param ``synth_source``; default: own organ)."""
        return self._field("synth_source", "") or self.organ

    def is_complete(self) -> bool:
        """True when the run names its organ, backbone, regime and fold (tags or params)."""
        return all(k in self.tags or k in self.params for k in REQUIRED_TAGS)

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.organ, self.backbone, self.regime, self.fold)

    @property
    def full_key(self) -> tuple[str, str, str, int, int, str]:
        """(organ, backbone, regime, fold, seed, source organ): one finished run per full key."""
        return (*self.key, self.seed, self.source_organ)

    @property
    def is_main(self) -> bool:
        """A cell of the main grid (own organ's generator), as opposed to a cross-organ source cell."""
        return self.source_organ == self.organ

    @property
    def label(self) -> str:
        extra = "" if self.is_main else f"·src {self.source_organ}"
        return cell_label(self.key) + extra + (f"·s{self.seed}" if self.seed else "")


def cell_label(key: tuple) -> str:
    organ, backbone, regime, fold = key
    return f"{organ}·{backbone}·{regime}·f{fold}"


@dataclass
class GridData:
    """Everything the report needs from one experiment. Artifacts are fetched lazily and cached.

    ``cells`` holds one run per (organ, backbone, regime, fold) of the main grid (own-organ generator,
    lowest seed) for the per-fold tables; ``runs`` holds every finished run by ``Cell.full_key``
    (all seeds, cross-organ source cells) for the pooled statistics.
    """

    tracking_uri: str
    experiment_id: str
    experiment_name: str
    cells: dict[tuple, Cell]
    parents: list[RunInfo]
    unfinished: dict[tuple, str] = field(default_factory=dict)  # key -> status of newest run
    runs: dict[tuple, Cell] = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, repr=False)

    def client(self):
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri)

    def values(self, attr: str) -> list:
        """Sorted distinct organs/backbones/regimes/folds among finished cells."""
        return sorted({getattr(c, attr) for c in self.cells.values()})

    def artifact_path(self, run_id: str, path: str) -> Path | None:
        """Local copy of a run artifact (file or folder), or None when it does not exist."""
        cache_key = ("artifact", run_id, path)
        if cache_key not in self._cache:
            dst = Path(tempfile.mkdtemp(prefix="tumorbench-report-"))
            try:
                local = self.client().download_artifacts(run_id, path, str(dst))
                self._cache[cache_key] = Path(local) if Path(local).exists() else None
            except Exception:  # missing artifact: MlflowException / OSError depending on the store
                self._cache[cache_key] = None
        return self._cache[cache_key]

    def summary(self, cell: Cell, organ: str | None = None) -> dict | None:
        """The cell's summary.json (own organ), or ``cross_organ/<organ>/summary.json``.

        Falls back to ``<results_dir>/summary.json`` when the artifact is absent.
        """
        organ = organ or cell.organ
        rel = "summary.json" if organ == cell.organ else f"cross_organ/{organ}/summary.json"
        cache_key = ("summary", cell.run_id, rel)
        if cache_key not in self._cache:
            local = self.artifact_path(cell.run_id, rel)
            if local is None and cell.tag(RESULTS_DIR):
                candidate = Path(cell.tag(RESULTS_DIR)) / rel
                local = candidate if candidate.is_file() else None
            self._cache[cache_key] = _read_summary(local) if local else None
        return self._cache[cache_key]

    def history(self, cell: Cell, key: str) -> list[tuple[int, float]]:
        """Metric history as (step, value) sorted by step; empty if never logged."""
        cache_key = ("history", cell.run_id, key)
        if cache_key not in self._cache:
            hist = self.client().get_metric_history(cell.run_id, key)
            self._cache[cache_key] = sorted((m.step, m.value) for m in hist)
        return self._cache[cache_key]


def _read_summary(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        print(f"tumorbench report: warning: {path}: unreadable summary.json ({exc})", file=sys.stderr)
        return None


def _to_info(run, cls=RunInfo) -> RunInfo:
    tags = dict(run.data.tags)
    return cls(run_id=run.info.run_id, experiment_id=run.info.experiment_id,
               name=tags.get(RUN_NAME, run.info.run_name or run.info.run_id),
               status=run.info.status, start_time=run.info.start_time, end_time=run.info.end_time,
               tags=tags, params=dict(run.data.params), metrics=dict(run.data.metrics))


def _search(client, experiment_ids: list[str], kind: str) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs(experiment_ids, filter_string=f"tags.`{KIND}` = '{kind}'",
                                  max_results=5000, order_by=["attributes.start_time DESC"],
                                  page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _pick_experiment(client, name: str | None, uri: str):
    if name:
        exp = client.get_experiment_by_name(name)
        if exp is None:
            names = [e.name for e in client.search_experiments()]
            raise InputError(f"--experiment {name!r}: no such experiment in {uri} (have: {names})")
        return exp
    candidates = [e for e in client.search_experiments() if _search(client, [e.experiment_id], "cell")]
    if not candidates:
        raise InputError(f"{uri}: no experiment with runs tagged {KIND}=cell "
                         "(run `tumorbench run` first or pass --tracking-uri)")
    candidates.sort(key=lambda e: e.last_update_time or 0, reverse=True)
    if len(candidates) > 1:
        print(f"tumorbench report: {len(candidates)} grid experiments found; using the most recent "
              f"{candidates[0].name!r} (choose with --experiment)", file=sys.stderr)
    return candidates[0]


def load_grid(tracking_uri: str | None = None, experiment: str | None = None) -> GridData:
    """Load cell and parent runs of one experiment (newest finished run wins per cell).

    Args:
        tracking_uri: MLflow URI; default ``$MLFLOW_TRACKING_URI`` or ``sqlite:///mlruns/mlflow.db``.
        experiment: experiment (grid) name; default: the most recently updated grid experiment.
    Raises:
        InputError: no such experiment / no cell runs.
    """
    from mlflow.tracking import MlflowClient

    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        raise InputError(f"{uri}: MLflow database not found (pass --tracking-uri or run a grid first)")
    client = MlflowClient(tracking_uri=uri)
    exp = _pick_experiment(client, experiment, uri)
    runs, unfinished = {}, {}
    for run in _search(client, [exp.experiment_id], "cell"):  # newest first
        cell = _to_info(run, Cell)
        if not cell.is_complete():
            print(f"tumorbench report: warning: run {cell.run_id} ({cell.name}) lacks one of the tags "
                  f"{REQUIRED_TAGS}; skipped", file=sys.stderr)
            continue
        if cell.status == "FINISHED":
            runs.setdefault(cell.full_key, cell)
        elif cell.is_main and cell.key not in unfinished:
            unfinished[cell.key] = cell.status
    cells = {}
    for full_key in sorted(k for k, c in runs.items() if c.is_main):
        cells.setdefault(full_key[:4], runs[full_key])  # lowest seed
    unfinished = {k: s for k, s in unfinished.items() if k not in cells}
    parents = [_to_info(r) for r in _search(client, [exp.experiment_id], "grid")]
    return GridData(uri, exp.experiment_id, exp.name, cells, parents, unfinished, runs)


def expected_cells(grid: GridData, grid_spec: dict[str, Any] | None) -> list[tuple]:
    """Cells the grid should have: from grid.toml axes when known, else observed axes' product."""
    keys = set(grid.cells) | set(grid.unfinished)
    axes = {a: sorted({k[i] for k in keys}) for i, a in enumerate(("organs", "backbones", "regimes", "folds"))}
    for axis in axes:
        if grid_spec and isinstance(grid_spec.get(axis), list) and grid_spec[axis]:
            axes[axis] = sorted(int(v) if axis == "folds" else str(v) for v in grid_spec[axis])
    return [(o, b, r, f) for o in axes["organs"] for b in axes["backbones"]
            for r in axes["regimes"] for f in axes["folds"]]
