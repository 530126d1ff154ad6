"""NIfTI reading/writing for models/ (which cannot import benchmark.io) and the volume cache.

Volumes are loaded once (CacheDataset-like; synthesis happens after cropping, so nothing random
is cached) and padded to at least the crop size, like MONAI SpatialPad.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

AIR_HU = -1024.0


@dataclass(frozen=True)
class Volume:
    """One cached training/validation case.

    Attributes:
        ct_hu: (X, Y, Z) float32 HU, padded to >= crop size with air.
        label: (X, Y, Z) uint8 0/1/2, padded with 0.
        fg_index: flat indices of label > 0 voxels (for positive crop centres).
        healthy: the case has no real tumor (may receive synthetic ones).
    """

    case_id: str
    ct_hu: np.ndarray
    label: np.ndarray
    fg_index: np.ndarray
    healthy: bool


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


def _item_field(item: Mapping, key: str):
    if key not in item:
        raise ValueError(f"training item {item.get('case_id', '?')!r} lacks field {key!r} "
                         "(expected case_id, image, label, healthy)")
    return item[key]


def pad_to(array: np.ndarray, shape: Sequence[int], value: float) -> np.ndarray:
    """Pad symmetrically (extra voxel at the end) so every axis is >= ``shape``."""
    widths = [(max(k - s, 0) // 2, max(k - s, 0) - max(k - s, 0) // 2) for s, k in zip(array.shape, shape)]
    if not any(a or b for a, b in widths):
        return array
    return np.pad(array, widths, constant_values=value)


def load_volume(item: Mapping, min_shape: Sequence[int]) -> Volume:
    """Read an item's CT and labels (same grid required) into a :class:`Volume`."""
    case_id = str(_item_field(item, "case_id"))
    ct = read_nifti(_item_field(item, "image"), f"CT of case {case_id}").get_fdata(dtype=np.float32)
    lab = np.asarray(read_nifti(_item_field(item, "label"), f"labels of case {case_id}").dataobj)
    if ct.shape != lab.shape or ct.ndim != 3:
        raise ValueError(f"case {case_id}: CT shape {ct.shape} and label shape {lab.shape} must be the same 3D grid")
    if lab.min() < 0 or lab.max() > 2:
        raise ValueError(f"case {case_id}: labels must be 0/1/2, found range [{lab.min()}, {lab.max()}]")
    ct = pad_to(ct.astype(np.float32), min_shape, AIR_HU)
    lab = pad_to(lab.astype(np.uint8), min_shape, 0)
    return Volume(case_id, ct, lab, np.flatnonzero(lab), bool(_item_field(item, "healthy")))


def load_volumes(items: Iterable[Mapping], min_shape: Sequence[int], progress: bool = True,
                 desc: str = "loading volumes") -> list[Volume]:
    """Load every item once (the cache)."""
    from tqdm.auto import tqdm

    items = list(items)
    return [load_volume(item, min_shape) for item in tqdm(items, desc=desc, disable=not progress, leave=False)]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(tmp_path)`` on a temp file next to ``path`` (same suffixes), then rename it
    onto ``path``; nothing is left half-written. The file gets the umask's permissions
    (mkstemp alone would make it private 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", suffix="".join(path.suffixes), dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_labels_atomic(labels: np.ndarray, reference, path: str | os.PathLike) -> Path:
    """Write (X, Y, Z) uint8 ``labels`` with ``reference``'s affine/header, atomically."""
    import nibabel as nib

    header = reference.header.copy()
    header.set_data_dtype(np.uint8)
    header.set_slope_inter(1, 0)
    out = nib.Nifti1Image(np.asarray(labels, dtype=np.uint8), reference.affine, header)
    return atomic_write(path, lambda tmp: nib.save(out, tmp))
