"""The DiffTumor repository's cross-validation folds -> ``splits.json``.

The official segmentation folds (``STEP3.SegmentationModel/cross_eval/<organ>_aug_data_fold/``)
are plain-text files ``real_tumor_train_<k>.txt`` / ``real_tumor_val_<k>.txt``, one case per
line: ``image_path label_path`` (whitespace separated, relative ``.nii.gz`` paths). The val
files list real-tumor cases; the train files list the fold's real-tumor training cases and the
healthy CTs (named after other collections).

A listed case matches a dataset case by the image file's name without ``.nii(.gz)`` (MSD:
``imagesTr/liver_7.nii.gz`` -> ``liver_7``); the official KiTS copy (``img/img0042``) matches
the imported ``case_00042``. Fold k trains on the matched cases of its train list plus the
dataset's healthy CTs (which the official lists name after another collection) and is tested on
the matched cases of its val list. A case listed twice (in one file, in two val lists, or in the
train and val list of one fold) is an error naming it. Real-tumor cases of the dataset in no
official list (a full MSD/KiTS import holds more than the paper used) go to the fold's
``excluded`` list: no fold trains or tests on them, as in the paper.
"""
from __future__ import annotations

import re
from pathlib import Path

from benchmark.data.layout import Dataset
from benchmark.data.splits import DEFAULT_SEED, add_inner_val
from benchmark.errors import InputError
from benchmark.io import write_json_atomic

VAL_NAME = "real_tumor_val_{k}.txt"
TRAIN_NAME = "real_tumor_train_{k}.txt"


def _listed_paths(path: Path) -> list[str]:
    """Image paths of a fold list (first column of each non-empty line)."""
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
        out.append(parts[0])
    return out


def _stem(image_path: str) -> str:
    return re.sub(r"\.nii(\.gz)?$", "", Path(image_path).name)


def _match(stem: str, known: set[str]) -> str | None:
    if stem in known:
        return stem
    kits = re.fullmatch(r"img(\d+)", stem)
    if kits and f"case_{int(kits.group(1)):05d}" in known:
        return f"case_{int(kits.group(1)):05d}"
    return None


def _read_lists(folder: Path, name: str, n_folds: int, known: set[str]) -> list[list[str]]:
    """Matched case ids per fold list; a case (or an unmatched image path) twice in one list is an error."""
    out = []
    for k in range(n_folds):
        path = folder / name.format(k=k)
        if not path.is_file():
            raise InputError(f"{path}: missing (expected {name.format(k=k)} beside {VAL_NAME.format(k=k)})")
        listed = _listed_paths(path)
        ids = [_match(_stem(p), known) or p for p in listed]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise InputError(f"{path}: {', '.join(twice[:5])} listed twice")
        out.append([i for i in ids if i in known])
    return out


def _check_disjoint(folder: Path, vals: list[list[str]], trains: list[list[str]]) -> None:
    """Each case in at most one val list, and never in the train and val list of one fold."""
    seen: dict[str, int] = {}
    for k, val in enumerate(vals):
        for case in val:
            if case in seen:
                raise InputError(f"{folder}: {case} listed twice: in {VAL_NAME.format(k=seen[case])} and "
                                 f"{VAL_NAME.format(k=k)}")
            seen[case] = k
        both = sorted(set(val) & set(trains[k]))
        if both:
            raise InputError(f"{folder}: {', '.join(both[:5])} listed twice: in {TRAIN_NAME.format(k=k)} and "
                             f"{VAL_NAME.format(k=k)}")


def read_official_folds(ds: Dataset, folder: str | Path) -> tuple[list[dict], dict[str, int]]:
    """Folds of ``ds`` from an official fold-list folder.

    Returns:
        (folds as in splits.json without inner_val, each with ``excluded``: the dataset's cases
        the fold neither trains nor tests on; counts {"listed", "matched", "unmatched", "excluded"}).
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
    known, healthy = set(ds.case_ids()), set(ds.case_ids("healthy"))
    vals = [sorted(v) for v in _read_lists(folder, VAL_NAME, n_folds, known)]
    trains = _read_lists(folder, TRAIN_NAME, n_folds, known)
    _check_disjoint(folder, vals, trains)
    tested = set().union(*vals)
    folds = []
    for val, train in zip(vals, trains):
        fold_train = sorted(set(train) | (healthy - tested))
        folds.append({"train": fold_train, "val": val, "excluded": sorted(known - set(fold_train) - set(val))})
    n_listed = sum(len(_listed_paths(folder / VAL_NAME.format(k=k))) for k in range(n_folds))
    excluded = set.intersection(*(set(f["excluded"]) for f in folds))
    return folds, {"listed": n_listed, "matched": len(tested), "unmatched": n_listed - len(tested),
                   "excluded": len(excluded)}


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
