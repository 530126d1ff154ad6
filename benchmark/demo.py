"""`make demo`: the phantom grid end to end (data -> tiny generators -> grid -> report) on CPU.

Every stage talks through files and is cached: a second `make demo` reuses the phantom
datasets, the tiny DiffTumor checkpoints and every finished cell (the runner skips cells whose
MLflow run finished with the same hash), so it only re-renders the report.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.data.layout import ORGANS

DEMO_EXPERIMENT = "tumorbench-demo"


@dataclass
class DemoResult:
    out: Path
    grid_path: Path
    report_index: Path
    tracking_uri: str
    seconds: dict[str, float] = field(default_factory=dict)
    cells: dict[str, int] = field(default_factory=dict)
    dataset_summaries: list[str] = field(default_factory=list)


def demo_grid_toml(out: Path, *, epochs: int, iters_per_epoch: int, seed: int) -> str:
    """The demo grid: 3 organs x UNet (tiny) x fold 0 x real/hu/difftumor, phantom datasets."""
    datasets = "\n".join(f'{organ} = "{(out / "phantom" / organ).resolve()}"' for organ in ORGANS)
    return f"""# Written by `tumorbench demo`: phantom grid on CPU (see grids/demo.toml for a commented grid).
name = "demo"
preset = "tiny"
seed = {seed}
device = "cpu"
results_dir = "{(out / "results").resolve()}"
organs = ["liver", "pancreas", "kidney"]
backbones = ["unet"]
folds = [0]
regimes = ["real", "hu", "difftumor"]

[datasets]
{datasets}

[train]
epochs = {epochs}
iters_per_epoch = {iters_per_epoch}
val_every = {max(1, epochs // 2)}
batch_size = 2
crop_size = [48, 48, 32]
lr = 2e-3
weight_decay = 1e-5
synth_prob = 0.5
val_overlap = 0.25

[generators.hu]
[generators.difftumor]
checkpoints = "auto"

[evaluate]
cross_organ = true
cross_organ_cases = "val"
overlap = 0.25  # sliding-window inference is most of a demo cell's time on CPU
previews = 2

[mlflow]
experiment = "{DEMO_EXPERIMENT}"
"""


def run_demo(out: str | Path = "demo_out", *, cases: int = 20, seed: int = 0, epochs: int = 6,
             iters_per_epoch: int = 10, tracking_uri: str | None = None, progress: bool = True) -> DemoResult:
    """Run the phantom pipeline end to end and return where everything is."""
    from benchmark import tracking
    from benchmark.data.check import ensure_valid_cached
    from benchmark.data.phantom import generate_phantom_dataset
    from benchmark.data.summary import summarize_dataset
    from benchmark.io import write_text_atomic
    from benchmark.runner import run_grid
    from reports.build import ReportOptions, build_report

    out = Path(out).resolve()
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    missing = [organ for organ in ORGANS if not (out / "phantom" / organ / "splits.json").is_file()]
    for organ in missing:
        generate_phantom_dataset(out / "phantom" / organ, organ, cases, seed, progress=progress)
    for organ in ORGANS:  # the integrity check the runner repeats (cached) before training
        ensure_valid_cached(out / "phantom" / organ)
    summaries = [summarize_dataset(out / "phantom" / organ) for organ in ORGANS]
    seconds["phantom data"] = time.perf_counter() - start
    if progress:
        print("\n\n".join(summaries), flush=True)

    grid_path = out / "demo_grid.toml"
    write_text_atomic(grid_path, demo_grid_toml(out, epochs=epochs, iters_per_epoch=iters_per_epoch, seed=seed))
    uri = tracking.resolve_tracking_uri(tracking_uri)
    start = time.perf_counter()
    outcomes = run_grid(grid_path, tracking_uri=uri, progress=progress)
    seconds["generators + grid"] = time.perf_counter() - start
    cells = {s: sum(o.status == s for o in outcomes) for s in ("finished", "skipped", "failed")}

    start = time.perf_counter()
    index = build_report(out / "report", ReportOptions(experiment=DEMO_EXPERIMENT, tracking_uri=uri),
                         progress=progress)
    seconds["report"] = time.perf_counter() - start
    return DemoResult(out=out, grid_path=grid_path, report_index=index, tracking_uri=uri,
                      seconds=seconds, cells=cells, dataset_summaries=summaries)


def format_demo_result(result: DemoResult) -> str:
    lines = ["", "TumorBench demo finished"]
    lines += [f"  {stage:<18} {secs:7.1f} s" for stage, secs in result.seconds.items()]
    lines += [f"  {'total':<18} {sum(result.seconds.values()):7.1f} s",
              "  cells: " + ", ".join(f"{n} {status}" for status, n in result.cells.items()),
              f"  datasets:     {result.out / 'phantom'}",
              f"  grid file:    {result.grid_path}",
              f"  results:      {result.out / 'results'}",
              f"  MLflow store: {result.tracking_uri}",
              f"  report:       {result.report_index}",
              f"  browse runs:  tumorbench ui --tracking-uri {result.tracking_uri}"]
    return "\n".join(lines)
