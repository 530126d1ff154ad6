"""Byte-reproducible NIfTI writing and memory-friendly reading for the dataset tools.

``nib.save`` to ``.nii.gz`` stores the (temporary) file name in the gzip header, so two
identical volumes written through ``atomic_path`` would differ in bytes. We serialise the
image ourselves and gzip it with a fixed header (``mtime=0``, no name): same array + affine
-> identical file bytes, which makes the phantom reproducible to the byte.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from benchmark.errors import InputError
from benchmark.io import atomic_path

GZIP_LEVEL = 1  # level 6 is ~15x slower on noisy CT for ~10% smaller files


def nifti_bytes(array: np.ndarray, affine: np.ndarray) -> bytes:
    """Gzipped NIfTI-1 bytes of ``array`` (kept dtype) with ``affine`` as qform and sform."""
    import nibabel as nib

    img = nib.Nifti1Image(np.asarray(array), np.asarray(affine, dtype=np.float64))
    img.set_data_dtype(array.dtype)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=1)  # 1 = scanner: every reader (ITK, nibabel, MONAI) agrees
    img.set_sform(affine, code=1)
    return gzip.compress(img.to_bytes(), compresslevel=GZIP_LEVEL, mtime=0)


def save_nifti_reproducible(path: str | os.PathLike, array: np.ndarray, affine: np.ndarray) -> None:
    """Write ``array`` to ``path`` (.nii.gz) atomically with byte-identical output for equal input."""
    data = nifti_bytes(array, affine)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def read_nifti_array(path: str | os.PathLike, what: str):
    """Load ``path`` fully, keeping its stored dtype.

    Returns:
        (array, affine, header): array in the file's on-disk dtype after scaling
        (int16 stays int16 when there is no slope), affine 4x4 float64.

    Raises:
        InputError: file missing, unreadable, or truncated/corrupt (named in the message).
    """
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {what} not found")
    try:
        img = nib.load(str(path))
        array = np.asanyarray(img.dataobj)  # decompresses everything: truncation fails here
    except Exception as exc:  # nibabel raises many types (ImageFileError, EOFError, zlib.error...)
        raise InputError(f"{path}: cannot read {what} ({type(exc).__name__}: {exc})") from exc
    if array.ndim == 4 and array.shape[3] == 1:  # some exporters add a singleton time axis
        array = array[..., 0]
    if array.ndim != 3:
        raise InputError(f"{path}: {what} has shape {array.shape}, expected a 3D volume")
    return array, np.asarray(img.affine, dtype=np.float64), img.header
