"""Seeded abdominal anatomy for the phantom CT (portal-venous-like contrast, HU).

Structures are painted from outside in; a later structure overwrites an earlier one where
they overlap (kidney over spleen gives a renal impression, vessels over pancreas...). The
``owner`` map records which structure each voxel belongs to, so labels come from it.
Positions are in RAS mm around the volume centre (liver on the patient's right = +x).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from benchmark.data.phantom_shapes import (
    Grid, SmoothField, bezier, ellipsoid_radius, rotation_matrix, tube_distance,
)

AIR, FAT, MUSCLE, BOWEL, LIVER, SPLEEN, PANCREAS, KIDNEY, VESSEL, BONE, TUMOR = range(11)
ORGAN_IDS = {"liver": LIVER, "pancreas": PANCREAS, "kidney": KIDNEY}
SOLID_ORGANS = (LIVER, SPLEEN, PANCREAS, KIDNEY)


@dataclass
class Canvas:
    """HU volume under construction plus the structure id of every voxel."""

    grid: Grid
    hu: np.ndarray
    owner: np.ndarray
    parenchyma_hu: dict[int, float] = field(default_factory=dict)  # mean HU per organ id
    cavity: np.ndarray | None = field(default=None, repr=False)  # inside the abdominal wall muscles

    @classmethod
    def empty(cls, grid: Grid) -> "Canvas":
        return cls(grid, np.full(grid.shape, -1000.0, np.float32), np.zeros(grid.shape, np.uint8))

    def paint(self, box, mask: np.ndarray, owner: int, hu) -> None:
        """Set ``hu`` (scalar or array shaped like ``mask``) and ``owner`` where ``mask``."""
        values = hu[mask] if isinstance(hu, np.ndarray) else np.float32(hu)
        self.hu[box][mask] = values
        self.owner[box][mask] = owner

    def organ(self, box, coords, rng, owner: int, center, semi_axes, mean_hu: float,
              max_rot_deg: float = 12.0, wobble: float = 0.08) -> np.ndarray:
        """Paint a deformed ellipsoid solid organ inside the abdominal cavity; return its rn."""
        rn = ellipsoid_radius(coords, center, semi_axes, rotation_matrix(rng, max_rot_deg))
        rn = rn - SmoothField(rng, wobble, (40.0, 110.0))(*coords)
        mask = (rn <= 1.0) & self.cavity[box]
        texture = SmoothField(rng, 4.0, (15.0, 50.0))(*coords)  # mild parenchymal heterogeneity
        self.paint(box, mask, owner, mean_hu + texture)
        self.parenchyma_hu[owner] = mean_hu
        return rn


def build_anatomy(grid: Grid, rng: np.random.Generator, sex: str) -> Canvas:
    """Paint body wall, bowel, organs, vessels and skeleton; returns the canvas (no noise)."""
    canvas = Canvas.empty(grid)
    body_scale = rng.uniform(0.95, 1.04) * (1.0 if sex == "M" else 0.95)
    _body_wall(canvas, rng, body_scale)
    _bowel(canvas, rng)
    _muscles(canvas, rng)
    _spleen(canvas, rng)
    _liver(canvas, rng)
    _pancreas(canvas, rng)
    _kidneys(canvas, rng)
    _great_vessels(canvas, rng)
    _spine_and_ribs(canvas, rng)
    return canvas


def _body_wall(canvas: Canvas, rng, scale: float) -> None:
    grid = canvas.grid
    box = grid.full_box()
    x, y, z = grid.coords(box)
    center = (0.0, -5.0, 0.0)
    semi = (100.0 * scale, 86.0 * scale, 1e6)
    wobble = SmoothField(rng, 0.025, (60.0, 160.0))(x, y, z)
    flat = np.zeros((1, 1, 1), np.float32)  # the body is a cylinder: the ellipse is 2D, wobble 3D
    fat_mm = rng.uniform(8.0, 22.0)
    muscle_mm = rng.uniform(7.0, 11.0)
    body = ellipsoid_radius((x, y, flat), center, semi) - wobble <= 1.0
    inner = ellipsoid_radius((x, y, flat), center, (semi[0] - fat_mm, semi[1] - fat_mm, 1e6)) - wobble <= 1.0
    cavity_semi = (semi[0] - fat_mm - muscle_mm, semi[1] - fat_mm - muscle_mm, 1e6)
    cavity = ellipsoid_radius((x, y, flat), center, cavity_semi) - wobble <= 1.0
    canvas.paint(box, body, FAT, rng.uniform(-110.0, -90.0))
    canvas.paint(box, inner, MUSCLE, rng.uniform(45.0, 58.0))
    canvas.paint(box, cavity, FAT, rng.uniform(-100.0, -80.0))  # intra-abdominal fat
    canvas.cavity = cavity


def _bowel(canvas: Canvas, rng) -> None:
    """Bowel loops (soft-tissue wall, fluid or gas content) in the anterior / lower abdomen."""
    grid = canvas.grid
    for _ in range(int(rng.integers(7, 12))):
        center = (rng.uniform(-60, 60), rng.uniform(10, 50), rng.uniform(-70, 0))
        semi = rng.uniform(10.0, 18.0, size=3)
        box = grid.box(center, semi * 1.3)
        coords = grid.coords(box)
        rn = ellipsoid_radius(coords, center, semi, rotation_matrix(rng, 60.0))
        mask = (rn <= 1.0) & canvas.cavity[box]
        canvas.paint(box, mask, BOWEL, rng.uniform(15.0, 35.0))
        content = rng.choice([-750.0, rng.uniform(0.0, 20.0)])  # gas or fluid lumen
        canvas.paint(box, mask & (rn <= rng.uniform(0.45, 0.7)), BOWEL, content)


def _muscles(canvas: Canvas, rng) -> None:
    """Psoas (widening inferiorly) and paraspinal muscles on both sides."""
    grid = canvas.grid
    hu = rng.uniform(45.0, 58.0)
    box = grid.full_box()
    x, y, z = grid.coords(box)
    for side in (-1.0, 1.0):
        paraspinal = ((x - side * 28.0) / 19.0) ** 2 + ((y + 70.0) / 13.0) ** 2 <= 1.0
        canvas.paint(box, np.broadcast_to(paraspinal, grid.shape), MUSCLE, hu)
        radius = np.clip(9.0 - 0.08 * z, 5.0, 16.0)  # thin at the top, wide lower down
        psoas = ((x - side * 27.0) ** 2 + (y + 42.0) ** 2) <= radius**2
        canvas.paint(box, np.broadcast_to(psoas, grid.shape), MUSCLE, hu)


def _liver(canvas: Canvas, rng) -> None:
    grid = canvas.grid
    center = np.array([42.0, 2.0, 30.0]) + rng.uniform(-5, 5, size=3)
    semi = np.array([50.0, 56.0, 42.0]) * rng.uniform(0.9, 1.08, size=3)
    box = grid.box(center, semi * 1.25)
    coords = grid.coords(box)
    mean_hu = rng.uniform(55.0, 68.0)
    canvas.organ(box, coords, rng, LIVER, center, semi, mean_hu, wobble=0.09)
    # Hepatic / portal vein branches (bright in portal phase); they stay labelled liver.
    hilum = center + np.array([-0.35, -0.1, -0.45]) * semi
    for _ in range(int(rng.integers(4, 7))):
        tip = center + rng.uniform(-0.75, 0.75, size=3) * semi
        mid = (hilum + tip) / 2 + rng.normal(0, 6, size=3)
        line = bezier(np.stack([hilum, mid, tip]), 16)
        radii = np.linspace(rng.uniform(3.5, 5.0), 1.6, len(line))
        lo, hi = line.min(0) - 6.0, line.max(0) + 6.0
        vbox = grid.box((lo + hi) / 2, (hi - lo) / 2)
        vessel = (tube_distance(grid.coords(vbox), line, radii) <= 1.0) & (canvas.owner[vbox] == LIVER)
        canvas.paint(vbox, vessel, LIVER, mean_hu + rng.uniform(80.0, 110.0))


def _spleen(canvas: Canvas, rng) -> None:
    center = np.array([-62.0, -26.0, 36.0]) + rng.uniform(-4, 4, size=3)
    semi = np.array([17.0, 30.0, 32.0]) * rng.uniform(0.85, 1.15, size=3)
    box = canvas.grid.box(center, semi * 1.25)
    canvas.organ(box, canvas.grid.coords(box), rng, SPLEEN, center, semi, rng.uniform(45.0, 55.0), 20.0)


def _pancreas(canvas: Canvas, rng) -> None:
    """Curved tube: head near the duodenum (right), body over the aorta, tail at the spleen."""
    head = np.array([26.0, -2.0, -20.0]) + rng.uniform(-4, 4, size=3)
    body = np.array([0.0, 10.0, -12.0]) + rng.uniform(-4, 4, size=3)
    tail = np.array([-50.0, -12.0, -2.0]) + rng.uniform(-5, 5, size=3)
    line = bezier(np.stack([head, 2 * body - (head + tail) / 2, tail]), 40)
    radii = np.interp(np.linspace(0, 1, len(line)), [0, 0.3, 1], [16.0, 12.5, 10.5])
    radii = radii * rng.uniform(0.9, 1.12)
    lo, hi = line.min(0) - 20, line.max(0) + 20
    box = canvas.grid.box((lo + hi) / 2, (hi - lo) / 2)
    coords = canvas.grid.coords(box)
    rn = tube_distance(coords, line, radii) - SmoothField(rng, 0.08, (20.0, 60.0))(*coords)
    mask = (rn <= 1.0) & canvas.cavity[box]
    # peripancreatic fat plane: bowel loops do not touch the gland directly
    rim = (rn <= 1.3) & ~mask & np.isin(canvas.owner[box], (FAT, BOWEL)) & canvas.cavity[box]
    canvas.paint(box, rim, FAT, rng.uniform(-100.0, -80.0))
    mean_hu = rng.uniform(38.0, 50.0)
    canvas.paint(box, mask, PANCREAS, mean_hu + SmoothField(rng, 5.0, (8.0, 25.0))(*coords))
    canvas.parenchyma_hu[PANCREAS] = mean_hu


def _kidneys(canvas: Canvas, rng) -> None:
    """Two kidneys: enhancing cortex, a medulla 5-15 HU darker (portal-venous phase: the
    corticomedullary difference has mostly faded), a fatty sinus at the medial hilum."""
    cortex_hu = rng.uniform(135.0, 165.0)
    medulla_hu = cortex_hu - rng.uniform(5.0, 15.0)
    for side, z_center in ((-1.0, -6.0), (1.0, -22.0)):  # right kidney sits lower (liver)
        center = np.array([side * 50.0, -38.0, z_center]) + rng.uniform(-4, 4, size=3)
        semi = np.array([21.0, 19.0, 46.0]) * rng.uniform(0.9, 1.1, size=3)
        box = canvas.grid.box(center, semi * 1.3)
        coords = canvas.grid.coords(box)
        rot = rotation_matrix(rng, 8.0)
        rn = ellipsoid_radius(coords, center, semi, rot) - SmoothField(rng, 0.04, (40.0, 90.0))(*coords)
        hilum = center + np.array([-side * semi[0] * 0.95, semi[1] * 0.2, 0.0])
        sinus = ellipsoid_radius(coords, hilum, (semi[0] * 0.7, 9.0, 14.0)) <= 1.0
        kidney = (rn <= 1.0) & canvas.cavity[box]
        canvas.paint(box, kidney & ~sinus, KIDNEY, medulla_hu)
        canvas.paint(box, kidney & ~sinus & (rn > 0.72), KIDNEY, cortex_hu)
        canvas.paint(box, kidney & sinus, FAT, rng.uniform(-90.0, -60.0))
    canvas.parenchyma_hu[KIDNEY] = cortex_hu


def _great_vessels(canvas: Canvas, rng) -> None:
    grid = canvas.grid
    box = grid.full_box()
    x, y, z = grid.coords(box)
    hu = rng.uniform(140.0, 175.0)
    aorta = ((x + 12.0) / 10.5) ** 2 + ((y + 24.0) / 10.5) ** 2 <= 1.0
    ivc = ((x - 19.0) / 12.0) ** 2 + ((y + 24.0) / 9.0) ** 2 <= 1.0
    canvas.paint(box, np.broadcast_to(aorta, grid.shape), VESSEL, hu)
    canvas.paint(box, np.broadcast_to(ivc, grid.shape), VESSEL, hu - rng.uniform(5.0, 25.0))


def _spine_and_ribs(canvas: Canvas, rng) -> None:
    """Vertebral bodies with discs, neural arch around the canal, lower ribs (upper half)."""
    grid = canvas.grid
    box = grid.full_box()
    x, y, z = grid.coords(box)
    shape = grid.shape
    rv = ((x / 16.0) ** 2 + ((y + 50.0) / 14.0) ** 2)
    disc = np.abs(((z - rng.uniform(0, 30)) % 30.0) - 15.0) > 12.0  # 6 mm disc every 30 mm
    canvas.paint(box, np.broadcast_to(rv <= 1.0, shape), BONE, rng.uniform(350.0, 450.0))
    canvas.paint(box, np.broadcast_to((rv <= 1.0) & (rv > 0.78), shape), BONE, rng.uniform(700.0, 950.0))
    canvas.paint(box, np.broadcast_to((rv <= 1.0) & disc, shape), MUSCLE, rng.uniform(70.0, 100.0))
    rc = np.sqrt(x**2 + (y + 73.0) ** 2)
    arch = (rc <= 12.0) | ((np.abs(x) <= 3.0) & (y < -73.0) & (y > -92.0))
    canvas.paint(box, np.broadcast_to(arch, shape), BONE, rng.uniform(600.0, 850.0))
    canvas.paint(box, np.broadcast_to(rc <= 7.0, shape), MUSCLE, rng.uniform(10.0, 25.0))  # canal
    wall = (canvas.owner == MUSCLE) & ~canvas.cavity
    lateral = np.abs(x) > 35.0  # ribs arc around the flanks, not across the midline
    for z_rib in np.arange(rng.uniform(8.0, 20.0), 80.0, rng.uniform(20.0, 26.0)):
        rib_band = (np.abs(z - z_rib + 0.15 * y) <= 3.5) & lateral & (y > -60.0)  # sloping down anteriorly
        canvas.paint(box, wall & rib_band, BONE, rng.uniform(550.0, 800.0))
