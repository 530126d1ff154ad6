"""NIfTI reading/writing for models/ (atomic writes from tumorbench_common.io) and training volumes.

A :class:`Volume` holds one case's CT and labels either in RAM (float32, :func:`load_volumes`) or
memory-mapped from the preprocessed int16 cache (:mod:`models.cache`, cropped to the body). Both
behave as the case's full grid padded to the crop size (air / label 0, like MONAI SpatialPad):
crops read the cropped-away air and the padding on the fly, so a memory-mapped case is never
copied whole and both kinds give the same crops at the same coordinates.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from tumorbench_common.io import atomic_write

AIR_HU = -1024.0


@dataclass(frozen=True, eq=False)
class Volume:
    """One training/validation case.

    Attributes:
        ct_hu: stored HU: float32 in RAM or an int16 memory map (the body box of the grid).
        label: stored uint8 0/1/2, same shape.
        fg_coords: (N, 3) int32 coordinates of label > 0 voxels in the stored arrays (all of them,
            or a uniform sample for large cases, see :mod:`models.cache`).
        healthy: the case has no real tumor (may receive synthetic ones).
        min_shape: crops are at least this big: the volume behaves as if padded to it.
        source: cache entry folder of a memory-mapped volume (pickled as this path only).
        grid: shape of the case's full grid (None: the stored shape).
        origin: where the stored arrays sit in the full grid.
    """

    case_id: str
    ct_hu: np.ndarray
    label: np.ndarray
    fg_coords: np.ndarray
    healthy: bool
    min_shape: tuple[int, int, int] = (1, 1, 1)
    source: str | None = None
    grid: tuple[int, int, int] | None = None
    origin: tuple[int, int, int] = (0, 0, 0)

    def __reduce__(self):
        if self.source is None:
            return super().__reduce__()
        # a worker reopens the memory maps (no copy of the data)
        return open_entry, (self.source, self.healthy, self.min_shape)

    @property
    def shape(self) -> tuple[int, ...]:
        """Padded shape of the full grid (every axis >= min_shape)."""
        return tuple(max(s, k) for s, k in zip(self.grid or self.label.shape, self.min_shape))

    @property
    def offset(self) -> tuple[int, ...]:
        """Position of the stored arrays in padded coordinates (padding symmetric, the extra
        voxel at the end)."""
        return tuple(max(k - s, 0) // 2 + o
                     for s, k, o in zip(self.grid or self.label.shape, self.min_shape, self.origin))

    def _read(self, array: np.ndarray, start: Sequence[int], crop: Sequence[int], fill) -> np.ndarray:
        src, dst, inside = [], [], True
        for s0, k, off, n in zip(start, crop, self.offset, array.shape):
            lo, hi = max(s0 - off, 0), min(s0 - off + k, n)
            src.append(slice(lo, hi))
            dst.append(slice(lo - (s0 - off), hi - (s0 - off)))
            inside &= lo == s0 - off and hi == s0 - off + k
        if inside:
            return np.asarray(array[tuple(src)])
        out = np.full(tuple(crop), fill, dtype=array.dtype)
        out[tuple(dst)] = array[tuple(src)]
        return out

    def ct_crop(self, start: Sequence[int], crop: Sequence[int]) -> np.ndarray:
        """float32 HU of the padded region ``start : start + crop``, C order (the cache keeps
        NIfTI's Fortran order: converting and reordering in one pass costs 0.7 ms a 96^3 crop,
        reordering the float32 crop afterwards 3.8 ms, `tumorbench perf data --regime`)."""
        return self._read(self.ct_hu, start, crop, AIR_HU).astype(np.float32, order="C")

    def label_crop(self, start: Sequence[int], crop: Sequence[int]) -> np.ndarray:
        return self._read(self.label, start, crop, 0).astype(np.uint8, copy=False)

    def voxel(self, index: Sequence[int]) -> tuple[int, float]:
        """(label, HU) at a padded coordinate (padding: 0, air)."""
        local = tuple(i - o for i, o in zip(index, self.offset))
        if any(i < 0 or i >= n for i, n in zip(local, self.label.shape)):
            return 0, AIR_HU
        return int(self.label[local]), float(self.ct_hu[local])

    def foreground(self, rng: np.random.Generator) -> tuple[int, ...] | None:
        """A random label > 0 voxel (padded coordinates), None when there is none."""
        if len(self.fg_coords) == 0:
            return None
        row = self.fg_coords[int(rng.integers(0, len(self.fg_coords)))]
        return tuple(int(c) + o for c, o in zip(row, self.offset))

    def dense_ct(self) -> np.ndarray:
        """The stored CT as float32 (validation reads one case at a time; for a cached case the
        body box: the air around it holds no organ or tumor voxel)."""
        return np.asarray(self.ct_hu, dtype=np.float32)

    def dense_label(self) -> np.ndarray:
        return np.asarray(self.label)


def in_memory_volume(case_id: str, ct_hu: np.ndarray, label: np.ndarray, healthy: bool,
                     min_shape: Sequence[int] = (1, 1, 1)) -> Volume:
    """A float32 in-RAM :class:`Volume` (every foreground voxel kept)."""
    return Volume(case_id, np.asarray(ct_hu, dtype=np.float32), np.asarray(label, dtype=np.uint8),
                  np.argwhere(label > 0).astype(np.int32), bool(healthy), tuple(int(k) for k in min_shape))


def read_nifti(path: str | os.PathLike, what: str):
    """Load a NIfTI image, raising one clear ValueError naming ``what`` and the path."""
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} not found: {path} (expected a NIfTI file)")
    try:
        img = nib.load(str(path))
        img.get_fdata(dtype=np.float32)  # force a read so corrupt files fail here
    except Exception as exc:  # nibabel raises many types for bad files
        raise ValueError(f"{what} {path} is not a readable NIfTI file: {exc}") from exc
    return img


def item_field(item: Mapping, key: str):
    if key not in item:
        raise ValueError(f"training item {item.get('case_id', '?')!r} lacks field {key!r} "
                         "(expected case_id, image, label, healthy)")
    return item[key]


def read_case(item: Mapping) -> tuple[str, np.ndarray, np.ndarray]:
    """(case id, float32 HU, uint8 labels) of a training item, checked (same 3D grid, labels 0/1/2)."""
    case_id = str(item_field(item, "case_id"))
    ct = read_nifti(item_field(item, "image"), f"CT of case {case_id}").get_fdata(dtype=np.float32)
    lab = np.asarray(read_nifti(item_field(item, "label"), f"labels of case {case_id}").dataobj)
    if ct.shape != lab.shape or ct.ndim != 3:
        raise ValueError(f"case {case_id}: CT shape {ct.shape} and label shape {lab.shape} must be the same 3D grid")
    if lab.min() < 0 or lab.max() > 2:
        raise ValueError(f"case {case_id}: labels must be 0/1/2, found range [{lab.min()}, {lab.max()}]")
    return case_id, ct, lab.astype(np.uint8)


def load_volume(item: Mapping, min_shape: Sequence[int]) -> Volume:
    """Read an item's CT and labels into an in-RAM float32 :class:`Volume`."""
    case_id, ct, lab = read_case(item)
    return in_memory_volume(case_id, ct, lab, bool(item_field(item, "healthy")), min_shape)


def load_volumes(items: Iterable[Mapping], min_shape: Sequence[int], progress: bool = True,
                 desc: str = "loading volumes") -> list[Volume]:
    """Load every item once into RAM as float32 (small datasets, tests; at paper scale use
    :func:`models.cache.cached_volumes`)."""
    from tqdm.auto import tqdm

    items = list(items)
    return [load_volume(item, min_shape) for item in tqdm(items, desc=desc, disable=not progress, leave=False)]


def open_entry(entry: str | os.PathLike, healthy: bool, min_shape: Sequence[int] = (1, 1, 1)) -> Volume:
    """A memory-mapped :class:`Volume` of a complete :mod:`models.cache` entry (here, beside
    :class:`Volume`, so that unpickling a volume needs no import of the cache writer)."""
    entry = Path(entry)
    meta = json.loads((entry / "meta.json").read_text())
    ct = np.load(entry / "ct.npy", mmap_mode="r")
    label = np.load(entry / "label.npy", mmap_mode="r")
    fg = np.load(entry / "fg.npy", mmap_mode="r")
    if list(ct.shape) != meta["shape"] or label.shape != ct.shape:
        raise ValueError(f"cache entry {entry} is inconsistent (shapes {ct.shape}, {label.shape}, "
                         f"meta {meta['shape']}); delete the folder to rebuild it")
    return Volume(meta["case_id"], ct, label, fg, bool(healthy), tuple(int(k) for k in min_shape), str(entry),
                  grid=tuple(meta["grid"]), origin=tuple(start for start, _ in meta["box"]))


def write_labels_atomic(labels: np.ndarray, reference, path: str | os.PathLike) -> Path:
    """Write (X, Y, Z) uint8 ``labels`` with ``reference``'s affine/header, atomically."""
    import nibabel as nib

    header = reference.header.copy()
    header.set_data_dtype(np.uint8)
    header.set_slope_inter(1, 0)
    out = nib.Nifti1Image(np.asarray(labels, dtype=np.uint8), reference.affine, header)
    return atomic_write(path, lambda tmp: nib.save(out, tmp))
