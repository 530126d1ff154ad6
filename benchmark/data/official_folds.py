"""The DiffTumor repository's cross-validation folds -> ``splits.json``.

The official segmentation folds (``STEP3.SegmentationModel/cross_eval/<organ>_aug_data_fold/``)
are plain-text files ``real_tumor_train_<k>.txt`` / ``real_tumor_val_<k>.txt``, one case per
line: ``image_path label_path`` (whitespace separated, relative ``.nii.gz`` paths). The val
files list only real-tumor cases and cover them all; the healthy CTs sit in every train file.

A listed case matches a dataset case by the image file's name without ``.nii(.gz)`` (MSD:
``imagesTr/liver_7.nii.gz`` -> ``liver_7``); the official KiTS copy (``img/img0042``) matches
the imported ``case_00042``. Healthy CTs of the dataset (which the official lists name after
another collection) are put in the train set of every fold, as the official lists do. Our
real-tumor cases missing from every val list are an error (they would fall outside the folds).
"""
from __future__ import annotations

import re
from pathlib import Path

from benchmark.data.layout import Dataset
from benchmark.data.splits import DEFAULT_SEED, add_inner_val
from benchmark.errors import InputError
from benchmark.io import write_json_atomic

VAL_NAME = "real_tumor_val_{k}.txt"


def _listed_ids(path: Path) -> list[str]:
    """Image-file stems of a fold list (first column of each non-empty line)."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read fold list ({exc})") from exc
    out = []
    for number, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        if not parts[0].endswith((".nii", ".nii.gz")):
            raise InputError(f"{path}: line {number}: expected 'image_path label_path' with .nii.gz paths, "
                             f"got {line.strip()!r}")
        out.append(re.sub(r"\.nii(\.gz)?$", "", Path(parts[0]).name))
    return out


def _match(stem: str, known: set[str]) -> str | None:
    if stem in known:
        return stem
    kits = re.fullmatch(r"img(\d+)", stem)
    if kits and f"case_{int(kits.group(1)):05d}" in known:
        return f"case_{int(kits.group(1)):05d}"
    return None


def read_official_folds(ds: Dataset, folder: str | Path) -> tuple[list[dict], dict[str, int]]:
    """Folds of ``ds`` from an official fold-list folder.

    Returns:
        (folds as in splits.json without inner_val, counts {"listed", "matched", "unmatched"}).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: official fold-list folder not found")
    n_folds = 0
    while (folder / VAL_NAME.format(k=n_folds)).is_file():
        n_folds += 1
    if n_folds < 2:
        raise InputError(f"{folder}: expected files {VAL_NAME.format(k=0)}, {VAL_NAME.format(k=1)}, ... "
                         "(DiffTumor cross_eval/<organ>_aug_data_fold)")
    known = set(ds.case_ids())
    listed = [_listed_ids(folder / VAL_NAME.format(k=k)) for k in range(n_folds)]
    vals = [sorted({m for m in (_match(s, known) for s in stems) if m}) for stems in listed]
    in_val = set().union(*vals)
    orphans = sorted(set(ds.case_ids("labeled")) - in_val)
    if orphans:
        raise InputError(f"{ds.root / 'cases.csv'}: real-tumor cases {orphans[:5]} ({len(orphans)} in all) are in "
                         f"no official val list of {folder}")
    folds = [{"train": sorted(known - set(val)), "val": val} for val in vals]
    n_listed = sum(len(stems) for stems in listed)
    return folds, {"listed": n_listed, "matched": len(in_val), "unmatched": n_listed - len(in_val)}


def write_official_splits(dataset: str | Path | Dataset, folder: str | Path, force: bool = False,
                          seed: int = DEFAULT_SEED) -> tuple[Path, dict[str, int]]:
    """Write ``splits.json`` (with inner_val) from the official folds; returns (path, counts)."""
    ds = dataset if isinstance(dataset, Dataset) else Dataset.open(dataset)
    path = ds.root / "splits.json"
    if path.is_file() and not force:
        raise InputError(f"{path}: already exists (results computed on it stay comparable); "
                         "add --force to replace it with the official folds")
    folds, counts = read_official_folds(ds, folder)
    write_json_atomic(path, add_inner_val(folds, ds.cases, seed))
    ds._splits = None
    return path, counts
