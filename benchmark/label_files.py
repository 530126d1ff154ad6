"""Label NIfTI files for scoring: their geometry (shape, affine, spacing), the check that a
prediction lies on its reference's grid, and the nearest-neighbour map onto that grid.

Scoring always happens on the reference's own grid (docs/metrics.md): a prediction on another
grid is an error, unless the caller asks for it to be resampled (nearest, in world coordinates).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmark.errors import InputError

GEOMETRY_TOL_MM = 1e-2  # largest affine difference (mm) still called "the same grid"


@dataclass(frozen=True)
class Geometry:
    """Grid of a label file: shape, 4x4 voxel->world affine, voxel size (mm)."""

    shape: tuple[int, int, int]
    affine: tuple[tuple[float, ...], ...]

    @property
    def spacing(self) -> tuple[float, float, float]:
        matrix = np.asarray(self.affine)[:3, :3]
        return tuple(float(s) for s in np.sqrt((matrix ** 2).sum(axis=0)))  # type: ignore[return-value]

    def matches(self, other: "Geometry") -> bool:
        return self.shape == other.shape and bool(
            np.abs(np.asarray(self.affine) - np.asarray(other.affine)).max() <= GEOMETRY_TOL_MM)

    def describe(self) -> str:
        origin = ", ".join(f"{v:g}" for v in np.asarray(self.affine)[:3, 3])
        spacing = "x".join(f"{s:g}" for s in self.spacing)
        return f"shape {list(self.shape)}, spacing {spacing} mm, origin ({origin}) mm"

    def as_record(self) -> dict:
        return {"shape": list(self.shape), "spacing": [round(s, 6) for s in self.spacing]}


def _open(path: Path, what: str):
    import nibabel as nib

    if not path.is_file():
        raise InputError(f"{path}: {what} not found")
    try:
        return nib.load(str(path))
    except Exception as exc:  # nibabel raises many types (ImageFileError, EOFError, zlib.error...)
        raise InputError(f"{path}: cannot read {what} ({type(exc).__name__}: {exc})") from exc


def read_geometry(path: Path, what: str) -> Geometry:
    """Geometry from the header only (cheap: no voxel data is decompressed)."""
    image = _open(Path(path), what)
    if len(image.shape) != 3:
        raise InputError(f"{path}: {what} must be 3D, got shape {image.shape}")
    return Geometry(tuple(int(n) for n in image.shape), tuple(map(tuple, np.asarray(image.affine, float))))


def load_labels(path: Path, what: str) -> tuple[np.ndarray, Geometry]:
    """uint8 0/1/2 label array [X, Y, Z] and its geometry.

    Reads the stored integer type directly (``benchmark.io.load_nifti`` would first expand
    the volume to float64, 8x the memory).
    """
    path = Path(path)
    image = _open(path, what)
    try:
        data = np.asanyarray(image.dataobj)
    except Exception as exc:  # truncated gzip etc. fail only when the data is read
        raise InputError(f"{path}: cannot read {what} ({type(exc).__name__}: {exc})") from exc
    if data.ndim != 3:
        raise InputError(f"{path}: {what} must be 3D, got shape {data.shape}")
    labels = data.astype(np.uint8)
    if data.size and (data.min() < 0 or data.max() > 2 or not np.array_equal(labels, data)):
        raise InputError(f"{path}: {what} must contain only labels 0/1/2, got values {np.unique(data)[:10]}")
    return labels, Geometry(labels.shape, tuple(map(tuple, np.asarray(image.affine, float))))


def check_same_grid(pred_path: Path, pred: Geometry, ref_path: Path, ref: Geometry) -> None:
    """InputError naming the prediction and both geometries when the grids differ."""
    if not pred.matches(ref):
        raise InputError(f"{pred_path}: prediction grid ({pred.describe()}) differs from its reference "
                         f"{ref_path} ({ref.describe()}); scores are computed on the reference grid: "
                         "predict on it, or pass --resample to map the prediction onto it (nearest)")


def map_to_grid(labels: np.ndarray, source: Geometry, target: Geometry) -> np.ndarray:
    """``labels`` on the ``source`` grid resampled (nearest) onto the ``target`` grid.

    Each target voxel centre takes the label of the source voxel nearest to the same world
    point; target voxels beyond the source's field of view take the nearest edge voxel's label
    (a 1 mm copy made by `benchmark.data.resample` covers the native field of view up to
    rounding of its last voxel).
    """
    from scipy import ndimage

    if source.matches(target):
        return np.asarray(labels, dtype=np.uint8)
    matrix = np.linalg.inv(np.asarray(source.affine)) @ np.asarray(target.affine)  # target -> source voxels
    return ndimage.affine_transform(np.asarray(labels, dtype=np.uint8), matrix[:3, :3], offset=matrix[:3, 3],
                                    output_shape=target.shape, order=0, mode="nearest", prefilter=False)
