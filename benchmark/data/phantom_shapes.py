"""Geometry helpers for the phantom: voxel grid in world mm, smooth random fields, shapes.

World coordinates are RAS+ in mm (x towards the patient's Right, y Anterior, z Superior),
with the volume centre at the origin. Shapes are evaluated only inside a bounding box
(tuple of slices) around them, which keeps a 112x96x72 case at a few tens of milliseconds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Box = tuple[slice, slice, slice]


@dataclass(frozen=True)
class Grid:
    """Voxel grid: ``shape`` (nx, ny, nz) voxels, ``spacing`` (sx, sy, sz) mm, RAS axes."""

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]

    @property
    def affine(self) -> np.ndarray:
        """4x4 voxel -> world (mm) matrix, diagonal (RAS), volume centre at the origin."""
        aff = np.diag([*self.spacing, 1.0])
        aff[:3, 3] = [-(n - 1) / 2.0 * s for n, s in zip(self.shape, self.spacing)]
        return aff

    def box(self, center_mm, half_mm) -> Box:
        """Slices of the voxels within ``center_mm +- half_mm`` (clipped to the volume)."""
        half = np.broadcast_to(np.asarray(half_mm, dtype=float), (3,))
        out = []
        for axis in range(3):
            n, s = self.shape[axis], self.spacing[axis]
            lo = (center_mm[axis] - half[axis]) / s + (n - 1) / 2.0
            hi = (center_mm[axis] + half[axis]) / s + (n - 1) / 2.0
            out.append(slice(int(np.clip(np.floor(lo), 0, n)), int(np.clip(np.ceil(hi) + 1, 0, n))))
        return tuple(out)  # type: ignore[return-value]

    def coords(self, box: Box) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Open (broadcastable) world x, y, z coordinate arrays (mm, float32) of ``box``."""
        axes = []
        for axis, sl in enumerate(box):
            n, s = self.shape[axis], self.spacing[axis]
            idx = np.arange(sl.start, sl.stop, dtype=np.float32)
            axes.append((idx - (n - 1) / 2.0) * s)
        x, y, z = np.ix_(*axes)
        return x, y, z

    def full_box(self) -> Box:
        return tuple(slice(0, n) for n in self.shape)  # type: ignore[return-value]


class SmoothField:
    """Sum of random plane waves: a smooth, stationary random field with std ~ ``amplitude``.

    Args:
        rng: random generator (all parameters are drawn at construction).
        amplitude: target standard deviation of the field.
        wavelength_mm: (min, max) wavelength range of the waves.
        n_waves: number of waves (6-8 give an irregular, non-periodic look).
    """

    def __init__(self, rng: np.random.Generator, amplitude: float, wavelength_mm=(30.0, 90.0), n_waves: int = 6):
        directions = rng.normal(size=(n_waves, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        wavelengths = rng.uniform(*wavelength_mm, size=n_waves)
        self.k = (directions * (2 * np.pi / wavelengths)[:, None]).astype(np.float32)
        self.phase = rng.uniform(0, 2 * np.pi, size=n_waves).astype(np.float32)
        self.scale = np.float32(amplitude * np.sqrt(2.0 / n_waves))
        self.min_wavelength = float(min(wavelength_mm))

    def __call__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Field values on open coordinate arrays (mm); float32, broadcast shape."""
        shape = np.broadcast_shapes(x.shape, y.shape, z.shape)
        # Long waves are evaluated on a coarser grid and repeated: <1/10 wavelength steps are
        # invisible under the scanner blur, and this is the phantom's hottest loop.
        coarse, steps = [], []
        for axis, c in enumerate((x, y, z)):
            flat = c.reshape(-1)
            step = 1
            if flat.size > 1:
                step = max(1, int(self.min_wavelength / 10.0 / abs(float(flat[1] - flat[0]))))
            steps.append(step)
            coarse.append(c[tuple(slice(None, None, step) if i == axis else slice(None) for i in range(3))])
        total = np.zeros(np.broadcast_shapes(*(c.shape for c in coarse)), dtype=np.float32)
        for (kx, ky, kz), phase in zip(self.k, self.phase):
            total += np.cos(kx * coarse[0] + ky * coarse[1] + kz * coarse[2] + phase)
        for axis, step in enumerate(steps):
            if step > 1 and total.shape[axis] > 1:
                total = np.repeat(total, step, axis=axis)
        total = total[tuple(slice(0, n) for n in shape)]
        return np.broadcast_to(total * self.scale, shape)


def rotation_matrix(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    """Random rotation with each Euler angle uniform in +-max_deg (3x3)."""
    ax, ay, az = np.deg2rad(rng.uniform(-max_deg, max_deg, size=3))
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def ellipsoid_radius(coords, center, semi_axes, rotation=None) -> np.ndarray:
    """Normalised ellipsoid radius (1 on the surface) at the given open coordinates.

    Args:
        coords: (x, y, z) open arrays in mm (from ``Grid.coords``).
        center: ellipsoid centre (mm). semi_axes: (a, b, c) mm along the rotated axes.
        rotation: 3x3 matrix whose columns are the ellipsoid axes in world space.
    """
    d = [c - np.float32(m) for c, m in zip(coords, center)]
    rot = np.eye(3) if rotation is None else rotation
    total = 0.0
    for axis in range(3):
        u = d[0] * np.float32(rot[0, axis]) + d[1] * np.float32(rot[1, axis]) + d[2] * np.float32(rot[2, axis])
        total = total + (u / np.float32(semi_axes[axis])) ** 2
    return np.sqrt(total)


def bezier(points: np.ndarray, n: int) -> np.ndarray:
    """Points (n, 3) on the quadratic Bezier curve through control ``points`` (3, 3)."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    p0, p1, p2 = points
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def tube_distance(coords, centerline: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """min_i |x - c_i| / r_i over centreline samples: <= 1 inside a tube of varying radius."""
    best = None
    for point, radius in zip(centerline.astype(np.float32), radii.astype(np.float32)):
        dist2 = (coords[0] - point[0]) ** 2 + (coords[1] - point[1]) ** 2 + (coords[2] - point[2]) ** 2
        value = np.sqrt(dist2) / radius
        best = value if best is None else np.minimum(best, value)
    return best
