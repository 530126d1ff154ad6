"""Banded linear maps applied along one axis of a 3D array: Gaussian filters (scipy's
``gaussian_filter1d`` with mode reflect, exactly) and linear interpolation.

Both are banded matrices, so a separable 3D filter or resampling is three compiled passes
that cost the matrices' non-zeros (see ``kernels.band_apply``), with no per-call set-up
beyond a cached band for each (length, sigma).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from synthesis import kernels


@dataclass(frozen=True, eq=False)
class Band:
    """A banded (n_out, n_in) matrix: row o holds ``weights[o, :widths[o]]`` in columns
    ``starts[o]...`` (zero elsewhere)."""

    starts: np.ndarray  # (n_out,) int64
    widths: np.ndarray  # (n_out,) int64
    weights: np.ndarray  # (n_out, max width) float32
    n_in: int

    @classmethod
    def from_dense(cls, matrix: np.ndarray) -> "Band":
        nonzero = np.asarray(matrix) != 0
        any_row = nonzero.any(axis=1)
        first = np.where(any_row, nonzero.argmax(axis=1), 0)
        last = np.where(any_row, matrix.shape[1] - 1 - nonzero[:, ::-1].argmax(axis=1), -1)
        widths = (last - first + 1).astype(np.int64)
        cols = first[:, None] + np.arange(max(1, int(widths.max(initial=0))))[None, :]
        inside = cols < first[:, None] + widths[:, None]
        weights = np.where(inside, np.asarray(matrix)[np.arange(len(first))[:, None],
                                                        np.minimum(cols, matrix.shape[1] - 1)], 0)
        return cls(first.astype(np.int64), widths, weights.astype(np.float32), int(matrix.shape[1]))

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.starts), self.n_in

    def dense(self) -> np.ndarray:
        out = np.zeros(self.shape, np.float32)
        for row, (a, w) in enumerate(zip(self.starts, self.widths)):
            out[row, a:a + w] = self.weights[row, :w]
        return out

    def first_rows(self, rows: int, n_in: int) -> "Band":
        """The first ``rows`` rows as a matrix with ``n_in`` columns (they must fit)."""
        if rows > len(self.starts) or int((self.starts[:rows] + self.widths[:rows]).max(initial=0)) > n_in:
            raise ValueError(f"band {self.shape}: its first {rows} rows do not fit {n_in} columns")
        return Band(self.starts[:rows], self.widths[:rows], self.weights[:rows], n_in)

    def scaled(self, factor: float) -> "Band":
        return Band(self.starts, self.widths, (self.weights * np.float32(factor)), self.n_in)


@lru_cache(maxsize=2048)
def _gaussian_band_cached(n: int, sigma: float, truncate: float) -> Band:
    starts, widths, weights = kernels.gaussian_band_arrays(n, sigma, truncate)
    for array in (starts, widths, weights):
        array.flags.writeable = False
    return Band(starts, widths, weights, n)


def gaussian_band(n: int, sigma: float, truncate: float = 4.0) -> Band:
    """(n, n) band of scipy's ``gaussian_filter1d(mode="reflect", truncate=truncate)``."""
    return _gaussian_band_cached(int(n), round(float(sigma), 9), float(truncate))


def gaussian_matrix(n: int, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """The same filter as a dense (n, n) float32 matrix."""
    return gaussian_band(n, sigma, truncate).dense()


def lerp_band(left: np.ndarray, weight: np.ndarray, n_in: int) -> Band:
    """Linear interpolation: output o = (1 - weight[o]) * in[left[o]] + weight[o] * in[left[o] + 1]."""
    weights = np.stack([1 - weight, weight], axis=1).astype(np.float32)
    return Band(np.asarray(left, np.int64), np.full(len(left), 2, np.int64), weights, int(n_in))


def lerp_matrix(left: np.ndarray, weight: np.ndarray, n_in: int) -> np.ndarray:
    """``lerp_band`` as a dense (len(left), n_in) float32 matrix."""
    return lerp_band(left, weight, n_in).dense()


def separable_matmul(field: np.ndarray, matrices: Sequence["Band | np.ndarray | None"]) -> np.ndarray:
    """Apply one (n_out, n_in) matrix per axis of a 3D array (None skips an axis); float32 out.

    Args:
        field: 3D array.
        matrices: per axis a Band, a dense matrix (converted) or None.
    """
    field = np.ascontiguousarray(field, dtype=np.float32)
    for axis in (2, 1, 0):  # the contiguous axis is the slowest pass: do it on the smallest array
        matrix = matrices[axis]
        if matrix is None:
            continue
        band = matrix if isinstance(matrix, Band) else Band.from_dense(np.asarray(matrix))
        if field.shape[axis] != band.n_in:
            raise ValueError(f"matrix {band.shape} does not fit axis {axis} of shape {field.shape}")
        if axis == 2:  # a sum along the contiguous axis does not vectorise: filter the transpose
            field = np.ascontiguousarray(field.transpose(0, 2, 1))
            field = kernels.band_apply(field, 1, band.starts, band.weights, band.widths, 0)
            field = np.ascontiguousarray(field.transpose(0, 2, 1))
        else:
            field = kernels.band_apply(field, axis, band.starts, band.weights, band.widths, 0)
    return field
