"""Resource estimates for `tumorbench run GRID --dry-run`: per cell and in total, training
iterations, GPU-hours from measured throughput, peak host RAM of a training process, and the
DataLoader workers per GPU that on-the-fly synthesis needs to keep the measured step rate fed.

Training CTs per cell come from the dataset's splits.json; while a dataset is not imported yet (or
has no splits.json) from the paper's official fold-0 training lists (`reports.training_sizes`), and
the table says which. GPU-hours = training iterations / measured it/s (validation and the final
sliding-window inference are not included: on the paper preset they add roughly one validation
pass over the fold every ``val_every`` epochs). Throughput figures (iterations/s at the preset's
crop and batch, AMP on CUDA) were measured with `tumorbench perf train`; a (backbone, preset, GPU)
without a measured figure prints ``n/a`` with the reason instead of a guess.

Workers per GPU = ceil(it/s x batch size / CPU crops/s per core of the cell's regime), the
per-core rate read from the data-path table `tumorbench perf data --regime R` writes
(`FIGURES_PATH`, format in `read_data_path_figures`); a regime missing there prints ``n/a``.

Peak RAM (host) with the preprocessed cache (`models.cache`): a measured base for the process
and its DataLoader workers plus what validation holds for its largest case: float32 CT and its
windowed copy, labels and prediction (10 bytes/voxel; on CUDA the stitching buffers live in GPU
memory), or 38 bytes/voxel when the cell runs on the CPU (logits and counts in RAM too).
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Sequence

# iterations/s: (backbone, preset, gpu) -> it/s, measured by `tumorbench perf train` (docs/runner.md)
IT_PER_S: dict[tuple[str, str, str], float] = {
    ("unet", "paper", "H200"): 42.0,  # 96^3 crops, batch 2, AMP bf16
    ("unet", "tiny", "H200"): 100.0,
}
GPU_KINDS = ("H200",)
BASE_RAM_GB = 3.0  # main process (torch, CUDA context) + 8 workers over the cache, see docs/runner.md
HOST_BYTES_PER_VOXEL = {"cuda": 10, "cpu": 38}
# The data-path table of `tumorbench perf data` (format: `read_data_path_figures`).
FIGURES_PATH = Path(__file__).resolve().parent / "perf" / "figures.json"
PAPER_SOURCE = "paper's official fold-0 lists"


def cell_iterations(train: dict, n_train: int | None) -> int | None:
    """epochs x iterations per epoch (one epoch = one pass over the training scans unless
    ``iters_per_epoch`` is set); None when that needs the training-set size and it is unknown."""
    per_epoch = train.get("iters_per_epoch")
    if not per_epoch:
        if n_train is None:
            return None
        per_epoch = max(1, math.ceil(n_train / int(train.get("batch_size", 2))))
    return int(train["epochs"]) * int(per_epoch)


def read_data_path_figures(path: str | Path | None = None) -> dict[str, dict]:
    """The ``data_path`` section of the perf table: ``{regime: {"crops_per_s_per_core": float,
    "crop": [96, 96, 96], "cpu": str, "date": str, "command": str}}`` (other top-level sections,
    e.g. ``train``, are not read here). {} when the file does not exist yet; InputError naming
    the file and field when it exists but is not of that shape."""
    from benchmark.errors import InputError

    path = Path(path or FIGURES_PATH)
    if not path.is_file():
        return {}
    try:
        section = json.loads(path.read_text()).get("data_path", {})
    except (ValueError, AttributeError) as err:
        raise InputError(f"{path}: expected a JSON object with a 'data_path' section ({err})") from None
    if not isinstance(section, dict):
        raise InputError(f"{path}: 'data_path' must map regime -> figures, got {type(section).__name__}")
    for regime, fig in section.items():
        rate = fig.get("crops_per_s_per_core") if isinstance(fig, dict) else None
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate <= 0:
            raise InputError(f"{path}: data_path.{regime}.crops_per_s_per_core must be a number > 0, got {rate!r}")
    return section


def workers_per_gpu(it_per_s: float, batch_size: int, figure: dict, crop: Sequence[int]) -> tuple[int | None, str]:
    """(DataLoader workers, how) to draw ``it_per_s x batch_size`` crops/s, or (None, why not)."""
    if figure.get("crop") is not None and list(figure["crop"]) != list(crop):
        return None, f"measured at crop {figure['crop']}, the cell crops {list(crop)}"
    need = it_per_s * batch_size
    rate = float(figure["crops_per_s_per_core"])
    where = ", ".join(str(figure[k]) for k in ("cpu", "date") if figure.get(k))
    return math.ceil(need / rate), f"{need:g} crops/s / {rate:g} per core" + (f" on {where}" if where else "")


def _open(path):
    """The dataset at ``path``, or None when it does not exist yet (dry runs before the data)."""
    from benchmark.data import Dataset
    from benchmark.errors import InputError

    try:
        return Dataset.open(path)
    except InputError:
        return None


def _train_and_test_ids(ds, cell) -> tuple[list[str] | None, list[str]]:
    """The cell's training ids (its regime's roles; inner validation split excluded when the cell
    selects there, `benchmark.cell_pipeline.cases_used`) and test fold;
    (None, []) while the dataset has no splits.json. A splits.json without ``inner_val`` gets the
    one the run would add (`make_splits`), in memory: a dry run writes nothing."""
    from benchmark.cell_pipeline import training_case_ids
    from benchmark.data.splits import DEFAULT_SEED, add_inner_val, fold_cases
    from benchmark.errors import InputError

    try:
        folds = ds.splits
    except InputError:
        return None, []
    if any("inner_val" not in fold for fold in folds):
        folds = add_inner_val(folds, ds.cases, DEFAULT_SEED)
    fit, _, test = fold_cases(ds, cell.fold, folds)
    if cell.selection == "final":
        fit = list(folds[cell.fold]["train"])
    return training_case_ids(cell, ds, fit), test


def _paper_n_train(cell) -> int | None:
    """Training CTs of a cell of this kind in the paper's fold-0 lists; None for an organ it did not
    run or a cell selecting on an inner split (the paper had none, so its count does not apply)."""
    from reports.training_sizes import paper_n

    counts = paper_n(cell.organ, cell.regime if cell.generator else "real", cell.cross_organ)
    return None if counts is None or cell.selection != "final" else sum(counts)


def gpu_hours(backbone: str, preset: str, iterations: int, gpu: str) -> float | None:
    rate = IT_PER_S.get((backbone, preset, gpu))
    return None if rate is None else iterations / rate / 3600.0


def _largest_case_voxels(dataset, case_ids: Sequence[str]) -> int | None:
    """Voxels of the largest case (NIfTI headers only); None when a header cannot be read."""
    import nibabel as nib

    try:
        return max((int(math.prod(nib.load(str(dataset.ct_path(c))).shape)) for c in case_ids), default=0)
    except Exception:  # nibabel raises many types for unreadable files
        return None


def _workers(cell, figures: dict) -> dict[str, tuple[int | None, str]]:
    """Per GPU kind: (workers per GPU, how) or (None, why not)."""
    hp, out = cell.hp(), {}
    for gpu in GPU_KINDS:
        rate, figure = IT_PER_S.get((cell.backbone, cell.preset, gpu)), figures.get(cell.regime)
        if rate is None:
            out[gpu] = (None, f"no measured it/s for {cell.backbone}/{cell.preset} on {gpu}")
        elif figure is None:
            out[gpu] = (None, f"no CPU crops/s for regime {cell.regime!r} (`tumorbench perf data --regime {cell.regime}`)")
        else:
            out[gpu] = workers_per_gpu(rate, int(hp.get("batch_size", 2)), figure, hp.get("crop_size", [96, 96, 96]))
    return out


def estimate(grid, cells, figures: dict | None = None) -> list[dict]:
    """One row per cell: training CTs and where that count comes from ("dataset", `PAPER_SOURCE`
    or None), iterations, GPU-hours per GPU kind (None: not measured), peak RAM GB, and
    workers per GPU kind (`_workers`). ``figures``: the data-path table (default: read it)."""
    figures = read_data_path_figures() if figures is None else figures
    datasets, largest, rows = {}, {}, []
    device = "cuda" if "cuda" in str(grid.device) else "cpu"
    for cell in cells:
        if cell.organ not in datasets:
            datasets[cell.organ] = _open(grid.datasets[cell.organ])
        ds = datasets[cell.organ]
        train_ids, test_ids = _train_and_test_ids(ds, cell) if ds is not None else (None, [])
        n_train, source = (len(train_ids), "dataset") if train_ids is not None else (_paper_n_train(cell), PAPER_SOURCE)
        key = (cell.organ, cell.fold)
        if key not in largest:
            largest[key] = _largest_case_voxels(ds, test_ids) if test_ids else None
        iterations = cell_iterations(cell.hp(), n_train)
        rows.append({"cell": cell, "n_train": n_train, "n_source": source if n_train is not None else None,
                     "iterations": iterations,
                     "gpu_hours": {g: None if iterations is None else gpu_hours(cell.backbone, cell.preset, iterations, g)
                                   for g in GPU_KINDS},
                     "ram_gb": None if not largest[key]
                     else BASE_RAM_GB + HOST_BYTES_PER_VOXEL[device] * largest[key] / 1024**3,
                     "workers": _workers(cell, figures)})
    return rows


def print_estimates(grid, cells, file=None, figures_path: str | Path | None = None) -> None:
    """The estimate table under the dry-run's cell table, then where its counts come from, the
    totals (with how many cells each leaves out) and the data path per regime."""
    file = file or sys.stdout
    path = Path(figures_path or FIGURES_PATH)
    rows = estimate(grid, cells, read_data_path_figures(path))
    width = max(len(r["cell"].run_name) for r in rows) + 2
    print(f"\nestimates (training only; throughput measured on {', '.join(GPU_KINDS)}, see docs/runner.md):", file=file)
    print(f"{'cell':<{width}} {'train CTs':>9} {'iterations':>10} " + " ".join(f"{'GPU-h ' + g:>11}" for g in GPU_KINDS)
          + f" {'peak RAM GB':>11}", file=file)
    for row in rows:
        n = _fmt(row["n_train"], 0) + ("*" if row["n_source"] == PAPER_SOURCE else " ")
        hours = " ".join(f"{_fmt(row['gpu_hours'][g]):>11}" for g in GPU_KINDS)
        print(f"{row['cell'].run_name:<{width}} {n:>9} {_fmt(row['iterations'], 0):>10} {hours} "
              f"{_fmt(row['ram_gb'], 1):>11}", file=file)
    totals = " ".join(f"{_fmt(_sum([r['gpu_hours'][g] for r in rows])):>11}" for g in GPU_KINDS)
    print(f"{'total':<{width}} {'':>9} {_fmt(_sum([r['iterations'] for r in rows]), 0):>10} {totals} "
          f"{_fmt(max((r['ram_gb'] for r in rows if r['ram_gb'] is not None), default=None), 1):>11} (max)",
          file=file)
    for line in _notes(rows) + _data_path_lines(grid, rows, path):
        print(line, file=file)


def _notes(rows: list[dict]) -> list[str]:
    """Where the training-set sizes come from, and what each total leaves out and why."""
    n, notes = len(rows), []
    paper = sorted({r["cell"].organ for r in rows if r["n_source"] == PAPER_SOURCE})
    if paper:
        n_paper = sum(r["n_source"] == PAPER_SOURCE for r in rows)
        notes.append(f"* train CTs from the {PAPER_SOURCE} (reports/training_sizes.py; every fold taken as fold 0's "
                     f"size) for {n_paper} of {n} cells: dataset {', '.join(paper)} not imported or without "
                     "splits.json" + ("; the others from the datasets' splits.json" if n_paper < n else ""))
    unknown = sum(r["iterations"] is None for r in rows)
    if unknown:
        notes.append(f"n/a iterations: {unknown} of {n} cells (no splits.json and no paper count: organ the paper "
                     "did not run, or an inner-val cell); the total counts the others")
    for gpu in GPU_KINDS:
        missing = [r for r in rows if r["iterations"] is not None and r["gpu_hours"][gpu] is None]
        if missing:
            kinds = sorted({f"{r['cell'].backbone}/{r['cell'].preset}" for r in missing})
            notes.append(f"n/a GPU-h {gpu}: {len(missing)} of {n} cells ({', '.join(kinds)}): throughput not "
                         f"measured on {gpu} (`tumorbench perf train --backbone B --size P --device cuda`, then "
                         "benchmark.estimates.IT_PER_S); the total counts the "
                         f"{sum(r['gpu_hours'][gpu] is not None for r in rows)} measured cells only")
    no_ram = sum(r["ram_gb"] is None for r in rows)
    if no_ram:
        notes.append(f"n/a peak RAM: {no_ram} of {n} cells (needs the test cases' NIfTI headers: dataset not imported)")
    return notes


def _data_path_lines(grid, rows: list[dict], path: Path) -> list[str]:
    """One line per regime and GPU kind: workers per GPU the measured step rate needs, or why n/a."""
    shown = _shown(path)
    source = f"{shown} (`tumorbench perf data --regime R`)" if path.is_file() else f"{shown}: not written yet"
    out = [f"data path: DataLoader workers per GPU to feed the measured step rate with on-the-fly synthesis "
           f"(it/s x batch / CPU crops/s per core; from {source}):"]
    for regime in dict.fromkeys(r["cell"].regime for r in rows):
        for gpu in GPU_KINDS:
            groups: dict[tuple, list[str]] = {}  # (workers, how) -> backbone/preset names
            for r in rows:
                kind = f"{r['cell'].backbone}/{r['cell'].preset}"
                if r["cell"].regime == regime and kind not in sum(groups.values(), []):
                    groups.setdefault(_generic(r["workers"][gpu], r["cell"]), []).append(kind)
            out.append(f"  {regime:<10} {gpu}: " + "; ".join(
                f"{', '.join(kinds)} {_fmt(n, 0)} ({how})" for (n, how), kinds in groups.items()))
    asked = sorted({str(r["cell"].hp().get("num_workers", 0)) for r in rows})
    out.append(f"  (the grid asks for num_workers = {', '.join(asked)} per cell)")
    return out


def _generic(workers: tuple[int | None, str], cell) -> tuple[int | None, str]:
    """The reason without the backbone's name, so that backbones with the same reason share a clause."""
    n, how = workers
    return n, how.replace(f" for {cell.backbone}/{cell.preset}", "")


def _shown(path: Path) -> str:
    """``path`` relative to the project root when it lies under it (shorter, same on every machine)."""
    root = Path(__file__).resolve().parents[1]
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path)


def _sum(values) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"
