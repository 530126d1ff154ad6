"""`make demo`: the phantom grid end to end (data -> grid -> report) on a 2-core CPU in minutes.

Sized so that its numbers carry information (docs/runner.md, "The demo"): 3 mm phantoms with 100
cases per organ (fold 0 tests 20: 12 with tumors, 8 healthy), 9 cells (3 organs x tiny U-Net x
real/hu/difftumor) trained for real on every run, three cells at a time on one thread each, and the
tiny DiffTumor generators shipped in ``benchmark/demo_weights`` (``benchmark.demo_generators``).
Every stage talks through files and is cached: a second run reuses the phantoms and every finished
cell (the runner skips cells whose MLflow run finished with the same hash) and re-renders the report.
"""
from __future__ import annotations

import json
import resource
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.data.layout import ORGANS

DEMO_EXPERIMENT = "tumorbench-demo"
DEMO_SCORECARD_GENERATORS = ("hu", "difftumor", "cellular")
# one organ: the engineering section alone takes ~30 s per card on the phantom (the demo is at its time edge)
DEMO_SCORECARD_ORGANS = ("liver",)
# DiffTumor blends its output through a mask blurred by U(0, 4) voxels at 1 mm: keep it 0-4 mm
OFFICIAL_BLUR_MM = 4.0


@dataclass(frozen=True)
class DemoSettings:
    """Everything that sizes the demo (the CLI options override some)."""

    cases: int = 100              # per organ; 5 folds -> 20 test cases
    tumor_fraction: float = 0.6   # 60 with tumors, 40 healthy -> fold 0 tests 12 + 8
    spacing_mm: float = 3.0
    seed: int = 0
    epochs: int = 50
    iters_per_epoch: int = 40
    crop_size: tuple[int, int, int] = (32, 32, 32)
    lr: float = 3e-3
    # cells at once, one torch thread each (tiny nets scale badly in threads): 3 on 2 cores leaves no
    # core idle while the last of the 9 cells runs (9 = 3 x 3)
    max_parallel: int = 3
    scorecards: bool = True  # the generators' quick scorecards (linked from the report)

    def data_key(self) -> tuple:
        """The fields that decide the phantom data (and so whether the shipped generators fit)."""
        return self.cases, self.tumor_fraction, self.spacing_mm, self.seed


@dataclass
class DemoResult:
    out: Path
    grid_path: Path
    report_index: Path
    tracking_uri: str
    settings: DemoSettings = field(default_factory=DemoSettings)
    seconds: dict[str, tuple[float, float]] = field(default_factory=dict)  # stage -> (wall, cpu)
    cells: dict[str, int] = field(default_factory=dict)
    cell_metrics: list[dict] = field(default_factory=list)
    contrasts: list = field(default_factory=list)
    generators: str = ""
    dataset_summaries: list[str] = field(default_factory=list)
    scorecards: Path | None = None  # the leaderboard of the generators' quick scorecards


@contextmanager
def _timed(seconds: dict, stage: str):
    """Wall and CPU seconds (this process + reaped worker processes) of a stage."""
    def cpu() -> float:
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    wall, used = time.perf_counter(), cpu()
    yield
    seconds[stage] = (time.perf_counter() - wall, cpu() - used)


def generator_kwargs(checkpoint: str | Path, settings: DemoSettings) -> dict:
    """DiffTumorGenerator kwargs of the demo: the official 0-4 mm blend blur (the generator converts
    mm to voxels of the phantom's spacing)."""
    del settings  # the blur is in mm whatever the spacing
    return {"checkpoint": str(checkpoint), "blur_sigma_mm": [0.0, OFFICIAL_BLUR_MM]}


def demo_grid_toml(out: Path, settings: DemoSettings, checkpoint: str | Path = "auto") -> str:
    """The demo grid: 3 organs x UNet (tiny) x fold 0 x real/hu/difftumor, phantom datasets."""
    datasets = "\n".join(f'{organ} = "{(out / "phantom" / organ).resolve()}"' for organ in ORGANS)
    kwargs = generator_kwargs(checkpoint, settings)
    checkpoints = '"auto"' if checkpoint == "auto" else \
        "{" + ", ".join(f'{organ} = "{checkpoint}"' for organ in ORGANS) + "}"
    return f"""# Written by `tumorbench demo`: phantom grid on CPU (see grids/demo.toml for a commented grid).
name = "demo"
preset = "tiny"
seed = {settings.seed}
device = "cpu"
results_dir = "{(out / "results").resolve()}"
organs = ["liver", "pancreas", "kidney"]
backbones = ["unet"]
folds = [0]
regimes = ["real", "hu", "difftumor"]

[datasets]
{datasets}

[train]
epochs = {settings.epochs}
iters_per_epoch = {settings.iters_per_epoch}
val_every = {max(1, settings.epochs // 4)}
warmup_epochs = 2
batch_size = 2
crop_size = {list(settings.crop_size)}
lr = {settings.lr}
weight_decay = 1e-5
synth_prob = 0.5
val_overlap = 0.5

[generators.hu]
[generators.difftumor]
checkpoints = {checkpoints}
blur_sigma_mm = {kwargs["blur_sigma_mm"]}  # the official 0-4 mm blend blur

[evaluate]
# cross-organ evaluation (Table 3) needs extra source -> target cells under the paper's protocol:
# off in the demo to keep it within 10 minutes
cross_organ = false
overlap = 0.75  # the paper's (grids/paper.toml); cheap on 3 mm volumes
previews = 2

[mlflow]
experiment = "{DEMO_EXPERIMENT}"
"""


def make_phantoms(out: Path, settings: DemoSettings, progress: bool = True) -> list[str]:
    """The three checked phantom datasets under ``out/phantom`` (kept when already there)."""
    from benchmark.data.check import ensure_valid_cached
    from benchmark.data.phantom import generate_phantom_dataset
    from benchmark.data.summary import summarize_dataset

    spacing = (settings.spacing_mm,) * 3
    for organ in ORGANS:
        if not (out / "phantom" / organ / "splits.json").is_file():
            generate_phantom_dataset(out / "phantom" / organ, organ, settings.cases, settings.seed, spacing=spacing,
                                     tumor_fraction=settings.tumor_fraction, progress=progress, workers=0)
    for organ in ORGANS:  # the integrity check the runner repeats (cached) before training
        ensure_valid_cached(out / "phantom" / organ)
    return [summarize_dataset(out / "phantom" / organ) for organ in ORGANS]


def _generators(settings: DemoSettings, progress: bool) -> tuple[str, str]:
    """(checkpoint for the grid, how it was chosen): the shipped weights when they fit."""
    from benchmark.demo_generators import SHIPPED_DIR, shipped_problems

    problems = shipped_problems()
    if not problems and settings.data_key() == DemoSettings().data_key():
        return str(SHIPPED_DIR), f"shipped ({SHIPPED_DIR})"
    why = "; ".join(problems) or "demo data differ from the data they were trained on"
    if progress:
        print(f"shipped DiffTumor weights not used ({why}): training tiny generators (~5 CPU min)", flush=True)
    return "auto", f"trained by this run ({why})"


def compile_synthesis_kernels(spacing_mm: float, crop_size: tuple[int, int, int], checkpoint: str) -> None:
    """Compile the numba kernels Hu and DiffTumor draw with (``cache=True``: written to numba's
    on-disk cache), so that the cells' worker processes load them (~0.5 CPU-s) instead of the first
    three compiling them at once (~15 CPU-s a hu cell, ~11 a difftumor cell; docs/performance.md).
    Every size type of every organ (their paths differ: kidney tumors may be exophytic) is drawn
    once on a crop of the cells' size, dtype and spacing (an ellipsoid organ: no phantom needed, so
    this runs beside the phantom stage); nothing here touches what the cells train on (own
    generators, own rng). tests/test_demo_kernels.py checks that a cell then compiles nothing."""
    import itertools

    import numpy as np

    from synthesis.errors import SynthesisInputError
    from synthesis.registry import make_generator

    grid = np.ogrid[tuple(slice(0, k) for k in crop_size)]
    organ = sum(((g - k / 2) / (0.45 * k)) ** 2 for g, k in zip(grid, crop_size)) <= 1
    ct = np.where(organ, 100.0, 0.0).astype(np.float32)[None]
    spacing = (float(spacing_mm),) * 3
    for name, kwargs in (("difftumor", generator_kwargs(checkpoint, DemoSettings())), ("hu", {})):
        for organ_name, size in itertools.product(ORGANS, ("tiny", "small", "medium", "large")):
            generator = make_generator(name, organ_name, size_probs={size: 1.0}, **kwargs)
            try:
                generator(ct, organ[None], spacing, np.random.default_rng(0))
            except SynthesisInputError:  # a size this organ cannot hold: nothing more to compile
                pass


@contextmanager
def _compiling_beside(settings: DemoSettings, checkpoint: str):
    """`compile_synthesis_kernels` in a spawned process while the block runs; the block calls the
    callable it gets to wait for it (after the grid: nothing waits on it before). It starts with the phantom stage (one core busy, the other idle)
    and compiles DiffTumor's kernels first, which the first cells to start (the difftumor ones,
    `benchmark.executors.longest_first`) need; a cell that starts before a kernel is cached compiles
    it itself, as it would without this."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if checkpoint == "auto":  # the runner trains the generators first, and they compile the kernels
        yield lambda: None
        return
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    try:
        future = pool.submit(compile_synthesis_kernels, settings.spacing_mm, settings.crop_size, checkpoint)
        yield lambda: (future.result(), pool.shutdown())
    finally:
        pool.shutdown(cancel_futures=True)


def cell_metrics(outcomes) -> list[dict]:
    """organ, regime, status and the own-organ test metrics of every cell (from its summary.json)."""
    rows = []
    for outcome in outcomes:
        path = Path(outcome.results_dir) / "summary.json"
        summary = json.loads(path.read_text()) if path.is_file() else {}
        mean, patient = summary.get("mean", {}), summary.get("patient", {})
        rows.append({"organ": outcome.cell.organ, "regime": outcome.cell.regime, "status": outcome.status,
                     "organ_dsc": mean.get("organ_dsc"), "tumor_dsc": mean.get("tumor_dsc"),
                     "patient_specificity": patient.get("specificity"),
                     "patient_sensitivity": patient.get("sensitivity")})
    return rows


def run_demo(out: str | Path = "demo_out", settings: DemoSettings = DemoSettings(), *,
             tracking_uri: str | None = None, progress: bool = True) -> DemoResult:
    """Run the phantom pipeline end to end and return where everything is and what it reached."""
    from benchmark import tracking
    from benchmark.demo_contrast import early_contrasts
    from benchmark.io import write_json_atomic, write_text_atomic
    from benchmark.runner import run_grid
    from reports.build import ReportOptions, build_report

    out = Path(out).resolve()
    result = DemoResult(out=out, grid_path=out / "demo_grid.toml", report_index=out / "report" / "index.html",
                        tracking_uri=tracking.resolve_tracking_uri(tracking_uri), settings=settings)
    checkpoint, result.generators = _generators(settings, progress)
    with _compiling_beside(settings, checkpoint) as compiled:
        with _timed(result.seconds, "phantom data"):
            result.dataset_summaries = make_phantoms(out, settings, progress)
        if progress:
            print("\n\n".join(result.dataset_summaries), flush=True)
        write_text_atomic(result.grid_path, demo_grid_toml(out, settings, checkpoint))
        with _timed(result.seconds, "grid (9 cells)"):
            outcomes = run_grid(result.grid_path, tracking_uri=result.tracking_uri, progress=progress,
                                max_parallel=settings.max_parallel)
            compiled()  # reaped here: its CPU-seconds count in the grid stage it served
    result.cells = {s: sum(o.status == s for o in outcomes) for s in ("finished", "skipped", "failed")}
    result.cell_metrics = cell_metrics(outcomes)
    with _timed(result.seconds, "early-tumor contrast"):
        ckpt = checkpoint if checkpoint != "auto" else None
        result.contrasts = [c for organ in ORGANS for c in early_contrasts(
            out / "phantom" / organ, generator_kwargs(ckpt or _auto_dir(out, organ), settings), seed=settings.seed)]
        write_json_atomic(out / "early_contrast.json", [vars(c) for c in result.contrasts])
    if settings.scorecards:
        with _timed(result.seconds, "scorecards (quick)"):
            result.scorecards = demo_scorecards(out, settings, checkpoint, result.tracking_uri, progress)
    with _timed(result.seconds, "report"):
        result.report_index = build_report(out / "report", ReportOptions(experiment=DEMO_EXPERIMENT,
                                                                         tracking_uri=result.tracking_uri),
                                           progress=progress)
    return result


def demo_scorecards(out: Path, settings: DemoSettings, checkpoint: str, tracking_uri: str,
                    progress: bool = True) -> Path:
    """Quick-profile scorecards of hu, difftumor and cellular on the liver phantom, with the downstream
    value of the grid just run, logged into the demo experiment (the report links them)."""
    from benchmark.scorecard.run import ScorecardSettings, run_scorecards

    kwargs = {"difftumor": {organ: generator_kwargs(checkpoint if checkpoint != "auto" else _auto_dir(out, organ),
                                                    settings) for organ in DEMO_SCORECARD_ORGANS}}
    result = run_scorecards(DEMO_SCORECARD_GENERATORS, [out / "phantom" / organ for organ in DEMO_SCORECARD_ORGANS],
                            out / "scorecards", generator_kwargs=kwargs,
                            settings=ScorecardSettings.quick_profile(seed=settings.seed), downstream=DEMO_EXPERIMENT,
                            tracking_uri=tracking_uri, experiment=DEMO_EXPERIMENT, progress=progress)
    return result.out / "leaderboard.html"


def _auto_dir(out: Path, organ: str) -> Path:
    return out / "results" / "generators" / organ / "fold_0"  # where the runner trains fold 0's "auto" checkpoints


def _fmt(value) -> str:
    return "   —" if value is None else f"{value:5.2f}"


def format_demo_result(result: DemoResult) -> str:
    from benchmark.demo_contrast import format_contrasts

    s = result.settings
    lines = ["", "TumorBench demo finished",
             f"  data: 3 phantoms x {s.cases} cases at {s.spacing_mm:g} mm (test fold 0); tiny U-Net, "
             f"{s.epochs * s.iters_per_epoch} iterations of batch 2 per cell; DiffTumor weights: {result.generators}",
             "  per cell, on its test fold (organ-post-processed):",
             f"    {'organ':<9} {'regime':<10} {'organ DSC':>9} {'tumor DSC':>9} {'specificity':>11} {'sensitivity':>11}"]
    lines += [f"    {m['organ']:<9} {m['regime']:<10} {_fmt(m['organ_dsc']):>9} {_fmt(m['tumor_dsc']):>9} "
              f"{_fmt(m['patient_specificity']):>11} {_fmt(m['patient_sensitivity']):>11}"
              + ("" if m["status"] != "failed" else "   FAILED") for m in result.cell_metrics]
    if result.contrasts:
        lines.append(format_contrasts(result.contrasts))
    lines.append(f"  {'stage':<22} {'wall s':>8} {'CPU s':>8}")
    lines += [f"  {stage:<22} {wall:8.1f} {cpu:8.1f}" for stage, (wall, cpu) in result.seconds.items()]
    lines += [f"  {'total':<22} {sum(w for w, _ in result.seconds.values()):8.1f} "
              f"{sum(c for _, c in result.seconds.values()):8.1f}",
              "  cells: " + ", ".join(f"{n} {status}" for status, n in result.cells.items()),
              f"  datasets:     {result.out / 'phantom'}",
              f"  grid file:    {result.grid_path}",
              f"  results:      {result.out / 'results'}",
              f"  MLflow store: {result.tracking_uri}",
              f"  report:       {result.report_index}",
              f"  scorecards:   {result.scorecards}",
              f"  browse runs:  tumorbench ui --tracking-uri {result.tracking_uri}",
              "  (published numbers in the report come from patient CTs and 96^3 models, not from this demo)"]
    return "\n".join(lines)
