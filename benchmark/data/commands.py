"""One API call per `tumorbench data ...` command (the CLI entries only parse arguments)."""
from __future__ import annotations

from pathlib import Path

from benchmark.data.check import ensure_valid
from benchmark.data.importers import import_dataset
from benchmark.data.layout import Dataset
from benchmark.data.phantom import generate_phantom_dataset
from benchmark.data.splits import make_splits
from benchmark.data.summary import summarize_dataset


def phantom_with_summary(out, organ: str, n_cases: int, seed: int, shape=None, spacing=None,
                         tumor_fraction: float = 0.6, progress: bool = True, workers: int = 1) -> str:
    """Generate phantom dataset(s) and return their summaries (one block per organ)."""
    paths = generate_phantom_dataset(out, organ, n_cases, seed, shape=shape, spacing=spacing,
                                     tumor_fraction=tumor_fraction, progress=progress, workers=workers)
    return "\n\n".join(summarize_dataset(p) for p in paths)


def import_with_summary(fmt: str, src, organ: str, out, **kwargs) -> str:
    """Import a public dataset, then return its summary."""
    return summarize_dataset(import_dataset(fmt, src, organ, out, **kwargs))


def check_report(path, progress: bool = True) -> str:
    """Validate the dataset (InputError listing the problems) and return a one-line OK."""
    ensure_valid(path, progress=progress)
    ds = Dataset.open(path)
    return f"{ds.root}: OK ({len(ds.cases)} cases, organ {ds.organ})"


def splits_report(path, n_folds: int, seed: int, force: bool, official=None) -> str:
    """Write splits.json unless present (or forced), or from the official fold lists; describe it."""
    existed = (Path(path) / "splits.json").is_file()
    note = ""
    if official is not None:
        from benchmark.data.official_folds import write_official_splits

        split_path, counts = write_official_splits(path, official, force=force, seed=seed)
        note = (f"; official folds of {official}: {counts['matched']} of {counts['listed']} listed val cases "
                f"matched ({counts['unmatched']} not in this dataset); {counts['excluded']} cases of this dataset in "
                "no official list are excluded from every fold")
    else:
        split_path = make_splits(path, n_folds=n_folds, seed=seed, force=force)
    ds = Dataset.open(path)
    sizes = [len(f["val"]) for f in ds.splits]
    inner = [len(f["inner_val"]) for f in ds.splits]
    state = "kept existing" if existed and not force and official is None else "wrote"
    return f"{state} {split_path}: {len(sizes)} folds, test (val) sizes {sizes}, inner_val sizes {inner}{note}"
