"""Preprocessed on-disk case cache (nnU-Net v2 manner): each case is read from NIfTI once,
cropped to the body, stored as int16 HU + uint8 labels + sampled foreground coordinates in
``.npy`` files and memory-mapped by every cell and DataLoader worker that trains on it.

A training process then holds only the pages its crops touch (shared page cache, no per-process
float32 copy): RAM no longer grows with the number of training cases.

Layout: ``<cache_dir>/<key>/{ct.npy, label.npy, fg.npy, meta.json}``; ``key`` fingerprints the
source files (resolved path, size, mtime) and the dataset spacing, so a changed file gets a new
entry and a folder shared by many grids, folds and workers is written once per case. Files are
written atomically and ``meta.json`` last: an entry with a ``meta.json`` is complete.

Differences to the in-RAM path, on purpose: HU are rounded to int16 (CT is stored as integers;
resampled floats lose < 0.5 HU), the air around the body is cropped away (crops reaching it read
-1024 HU, as the padding: both window to 0), validation sees the body box only, and at most ``FG_SAMPLES`` foreground voxels per case are kept as
positive crop centres (a uniform sample, as nnU-Net's class locations).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from models.volumes import Volume, atomic_write, item_field, open_entry, read_case  # noqa: F401 (open_entry: public here too)

FORMAT = 1
FG_SAMPLES = 50_000
BODY_HU = -500.0  # voxels above this (or labelled) are body; the box around them is kept


def case_key(item: Mapping, spacing: Sequence[float]) -> str:
    """Fingerprint of a case's source files and the spacing (names its cache entry)."""
    parts = [f"format={FORMAT}", f"spacing={tuple(float(s) for s in spacing)}"]
    for field in ("image", "label"):
        path = Path(item[field]).resolve()
        stat = path.stat()
        parts.append(f"{path}|{stat.st_size}|{stat.st_mtime_ns}")
    return f"{item['case_id']}-" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def body_box(ct: np.ndarray, label: np.ndarray) -> tuple[slice, ...]:
    """Bounding box of the body (HU > BODY_HU) and every labelled voxel; the whole grid if empty."""
    inside = (ct > BODY_HU) | (label > 0)
    if not inside.any():
        return tuple(slice(0, n) for n in ct.shape)
    box = []
    for axis in range(3):
        hits = np.flatnonzero(inside.any(axis=tuple(a for a in range(3) if a != axis)))
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def _save_npy(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda tmp: np.save(tmp, array))


def write_entry(item: Mapping, entry: Path, key: str) -> None:
    """Read, crop, quantise and store one case (``meta.json`` last)."""
    case_id, ct, label = read_case(item)
    grid, box = ct.shape, body_box(ct, label)
    ct, label = ct[box], np.ascontiguousarray(label[box])
    ct16 = np.clip(np.rint(ct), -32768, 32767).astype(np.int16)
    fg = np.argwhere(label > 0).astype(np.int32)
    if len(fg) > FG_SAMPLES:  # seeded by the key: the same entry always keeps the same sample
        rng = np.random.default_rng(int(key.rsplit("-", 1)[1], 16))
        fg = fg[np.sort(rng.choice(len(fg), FG_SAMPLES, replace=False))]
    entry.mkdir(parents=True, exist_ok=True)
    _save_npy(entry / "ct.npy", ct16)
    _save_npy(entry / "label.npy", label)
    _save_npy(entry / "fg.npy", fg)
    meta = {"format": FORMAT, "key": key, "case_id": case_id, "shape": list(ct16.shape), "grid": list(grid),
            "box": [[s.start, s.stop] for s in box], "n_foreground": int((label > 0).sum()),
            "image": str(item["image"]), "label": str(item["label"])}
    atomic_write(entry / "meta.json", lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1)))


def ensure_entry(item: Mapping, cache_dir: str | os.PathLike, spacing: Sequence[float]) -> Path:
    """The complete cache entry of ``item``, written first if missing (or from another format)."""
    key = case_key(item, spacing)
    entry = Path(cache_dir) / key
    meta = entry / "meta.json"
    if not (meta.is_file() and json.loads(meta.read_text()).get("format") == FORMAT):
        write_entry(item, entry, key)
    return entry


def cached_volumes(items: Iterable[Mapping], cache_dir: str | os.PathLike, spacing: Sequence[float],
                   min_shape: Sequence[int] = (1, 1, 1), progress: bool = True,
                   desc: str = "preprocessing cases") -> list[Volume]:
    """Memory-mapped volumes of ``items`` from ``cache_dir`` (entries written once, on first use)."""
    from tqdm.auto import tqdm

    items = list(items)
    for item in items:
        for field in ("case_id", "image", "label", "healthy"):
            item_field(item, field)
    return [open_entry(ensure_entry(item, cache_dir, spacing), item["healthy"], min_shape)
            for item in tqdm(items, desc=desc, disable=not progress, leave=False)]

