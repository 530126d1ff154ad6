"""Atomic file writing and NIfTI reading with clear errors (nothing half-written).

The one home of atomic writes for every layer (synthesis, models, reports, benchmark): a writer
fills a temp file/folder next to the target, which is renamed onto it only on success. Durable
across a node crash: the temp file (every file of a temp folder) is fsynced before the rename and
the parent folder after it, so after a power loss the target is the old or the complete new one,
never a renamed but empty/truncated file (what ext4/XFS/NFS may otherwise leave).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from tumorbench_common.errors import InputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _apply_umask(path: Path, mode: int) -> None:
    """mkstemp/mkdtemp create private 0600/0700 entries; published results follow the umask."""
    os.chmod(path, mode & ~_umask())


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file's data (or a folder's entries) to stable storage."""
    is_dir = Path(path).is_dir()
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if is_dir else 0))
    try:
        os.fsync(fd)
    except OSError:
        if not is_dir:  # some filesystems refuse fsync on folders (EINVAL): nothing more to do there
            raise
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            fsync_path(Path(folder) / name)
        fsync_path(folder)


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp folder next to ``target``; on success it replaces ``target``.

    On an exception the temp folder is removed and ``target`` is left untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    _apply_umask(tmp, 0o777)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_tree(tmp)
    if target.exists():
        backup = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, backup)
        os.replace(tmp, target)
        shutil.rmtree(backup, ignore_errors=True)
    else:
        os.replace(tmp, target)
    fsync_path(target.parent)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp file path in ``target``'s folder; renamed onto ``target`` on success.

    The temp name keeps ``target``'s suffixes (``.nii.gz``) so writers that infer the
    format from the name work.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(target.suffixes)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.tmp-", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    _apply_umask(tmp, 0o666)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(tmp)
    os.replace(tmp, target)
    fsync_path(target.parent)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a temp path next to ``path`` and rename it onto ``path`` on success
    (for writers that take a file name: ``torch.save``, ``nib.save``, ``fig.savefig``)."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def save_figure_atomic(fig, path: str | os.PathLike, **savefig_kwargs) -> Path:
    """``fig.savefig`` to ``path`` atomically (a reader never sees half a PNG); the temp name keeps
    the suffix, so matplotlib infers the format from it."""
    return atomic_write(path, lambda tmp: fig.savefig(tmp, **savefig_kwargs))


def copy_atomic(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Copy a file so that ``target`` is either absent/old or complete, never half-copied."""
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def read_json(path: str | os.PathLike, what: str = "JSON file", error: type[Exception] = InputError) -> Any:
    """Parsed JSON of ``path``; ``error`` (the caller layer's input error) names the file when it
    is missing or not JSON."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise error(f"{path}: {what} is not valid JSON ({exc})") from exc


def load_file(path: str | os.PathLike, what: str, load: Callable[[Path], Any],
              error: type[Exception] = InputError) -> Any:
    """``load(path)`` with one clear ``error`` (the caller layer's) naming the file: ``PATH: WHAT not
    found`` or ``PATH: cannot read WHAT (Type: message)`` for whatever ``load`` raised (readers
    raise many types for corrupt files: pickle/zip errors, EOFError, zlib.error, ...)."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} not found")
    try:
        return load(path)
    except Exception as exc:
        raise error(f"{path}: cannot read {what} ({type(exc).__name__}: {exc})") from exc


def load_nifti(path: str | os.PathLike, what: str = "NIfTI image"):
    """Load a NIfTI fully (so truncated .nii.gz files fail here, not later).

    Returns the nibabel image with its data already read (``img.dataobj`` cached).
    Raises InputError naming the file for missing / unreadable / corrupt files.
    """
    import nibabel as nib

    def load(p: Path):
        img = nib.load(str(p))
        img.get_fdata(caching="fill")  # forces decompression: truncated gzip raises here
        return img

    return load_file(path, what, load)


def save_nifti_atomic(path: str | os.PathLike, data, affine, dtype=None, header=None) -> None:
    """Write ``data`` as NIfTI to ``path`` atomically (temp file + rename)."""
    import nibabel as nib
    import numpy as np

    arr = np.asarray(data if dtype is None else np.asarray(data).astype(dtype))
    img = nib.Nifti1Image(arr, affine, header=header)
    img.set_data_dtype(arr.dtype)
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
