"""Phantom "real" tumors: an appearance process of its own (not the Hu et al. recipe).

Hu et al. synthesise texture as filtered salt noise x blurred ellipsoid mask x a HU
difference. Here a lesion is a lobulated union of spheres with a wavy surface whose
interior follows a radiological model: a base attenuation relative to the parenchyma
(hypo-attenuating), a mottled low-frequency texture, an
enhancing rim for many lesions, a near-fluid necrotic core for larger ones, and a soft
(partial-volume) edge. This keeps "real vs synthetic" a meaningful gap in the benchmark.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from benchmark.data.phantom_anatomy import BONE, MUSCLE, SOLID_ORGANS, TUMOR, VESSEL, Canvas
from benchmark.data.phantom_shapes import SmoothField
from tumorbench_common.cohorts import is_early

# radius ranges (mm) and probabilities of the size classes; tiny lesions are the hard ones
SIZE_CLASSES = {"tiny": (3.0, 5.0), "small": (5.0, 10.0), "medium": (10.0, 20.0), "large": (20.0, 34.0)}
SIZE_PROBS = {
    "liver": (0.25, 0.30, 0.25, 0.20),
    "pancreas": (0.15, 0.35, 0.35, 0.15),
    "kidney": (0.15, 0.25, 0.30, 0.30),
}
# how far (in units of the radius) a lesion may grow out of its organ: kidney tumors are often
# exophytic, pancreatic ones widen the gland, liver lesions bulge the capsule only slightly
OUTGROWTH = {"liver": 0.15, "pancreas": 0.5, "kidney": 0.6}
# early (radius <= 10 mm) kidney lesions stay in the organ, as DiffTumor's kidney masks (only medium and
# large ones may be exophytic): a few-mm bulge is lost in partial volume with the perirenal fat
EARLY_OUTGROWTH = {"kidney": 0.15}
MAX_LESIONS = {"liver": 5, "pancreas": 2, "kidney": 3}
MIN_RADIUS_VOXELS = 1.5


def outgrowth(organ: str, radius_mm: float) -> float:
    """How far (in radii) a lesion of ``radius_mm`` may grow out of its organ."""
    return EARLY_OUTGROWTH.get(organ, OUTGROWTH[organ]) if is_early(radius_mm) else OUTGROWTH[organ]


@dataclass(frozen=True)
class Lesion:
    """One tumor. Positions in world mm, HU values absolute or relative as named."""

    center_mm: tuple[float, float, float]
    radius_mm: float
    lobes: tuple[tuple[float, float, float, float], ...]  # (dx, dy, dz, radius) mm
    base_hu: float            # absolute HU of the viable tumor tissue
    rim_hu: float             # extra HU of the enhancing rim (0 = no rim)
    rim_mm: float
    necrosis_fraction: float  # inner normalised radius that is necrotic (0 = none)
    necrosis_hu: float
    edge_mm: float            # width of the soft boundary


def sample_lesions(canvas: Canvas, organ: str, organ_id: int, rng: np.random.Generator) -> list[Lesion]:
    """Draw 1..MAX_LESIONS lesions placed inside the organ (deeper for larger ones)."""
    n = min(int(rng.geometric(0.55)), MAX_LESIONS[organ])  # P(1)=.55, P(2)=.25, ...
    organ_mask = canvas.owner == organ_id
    where = np.argwhere(organ_mask)
    lo, hi = where.min(0), where.max(0) + 1
    crop = organ_mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    depth = ndi.distance_transform_edt(np.pad(crop, 1), sampling=canvas.grid.spacing)[1:-1, 1:-1, 1:-1]
    return [_sample_lesion(canvas, organ, organ_id, depth, lo, rng) for _ in range(n)]


def _sample_lesion(canvas, organ, organ_id, depth, offset, rng) -> Lesion:
    size = rng.choice(list(SIZE_CLASSES), p=SIZE_PROBS[organ])
    # no lesion thinner than the grid resolves (3 voxels across): on a coarse grid a smaller one is a
    # partial-volume blob that looks like any organ edge (2 mm grid: 3 mm, the tiny class's minimum)
    radius = max(float(rng.uniform(*SIZE_CLASSES[size])), MIN_RADIUS_VOXELS * max(canvas.grid.spacing))
    wanted_depth = min(radius * (1.0 - outgrowth(organ, radius)), 0.5 * float(depth.max()))
    candidates = np.argwhere(depth >= wanted_depth)
    vox = candidates[rng.integers(len(candidates))] + offset
    center = canvas.grid.affine[:3, :3] @ vox + canvas.grid.affine[:3, 3]
    lobes = []
    if radius > 5.0:
        for _ in range(int(rng.integers(1, 5))):
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            lobes.append((*(direction * radius * rng.uniform(0.45, 0.8)), radius * rng.uniform(0.35, 0.6)))
    return Lesion(
        center_mm=tuple(float(c) for c in center), radius_mm=radius, lobes=tuple(lobes),
        base_hu=_lesion_hu(canvas.parenchyma_hu[organ_id], organ, rng),
        rim_hu=float(rng.uniform(20.0, 50.0)) if radius >= 6.0 and rng.random() < 0.6 else 0.0,
        rim_mm=float(rng.uniform(1.5, 3.0)),
        necrosis_fraction=float(rng.uniform(0.35, 0.6)) if radius >= 12.0 and rng.random() < 0.75 else 0.0,
        necrosis_hu=float(rng.uniform(5.0, 25.0)),
        edge_mm=float(rng.uniform(1.5, 3.0) if organ == "pancreas" else rng.uniform(0.5, 1.5)),
    )


def _lesion_hu(parenchyma_hu: float, organ: str, rng) -> float:
    """HU of the viable lesion tissue. Kidney (portal-venous phase): 75-105 HU like most renal
    cell carcinomas, darker than cortex and medulla (120-165 HU, else a lesion and a medulla look
    alike) yet clearly brighter than the psoas, paraspinal muscles and liver (45-68 HU) that an
    exophytic lesion borders. Liver and pancreas: parenchyma - 30-90 HU (hypo-attenuating)."""
    if organ == "kidney":
        return float(rng.uniform(75.0, 105.0))
    return parenchyma_hu - float(rng.uniform(30.0, 90.0))


def render_lesion(canvas: Canvas, organ: str, organ_id: int, lesion: Lesion, rng: np.random.Generator) -> int:
    """Blend ``lesion`` into ``canvas`` (HU and owner=TUMOR); returns its labelled voxel count."""
    grid = canvas.grid
    reach = lesion.radius_mm * 1.9 + 4.0
    box = grid.box(lesion.center_mm, reach)
    coords = grid.coords(box)
    rn = _lobulated_radius(coords, lesion, rng)
    allowed = _allowed_region(canvas, box, organ_id, outgrowth(organ, lesion.radius_mm) * lesion.radius_mm + 2.0)
    inside_mm = (1.0 - rn) * lesion.radius_mm  # ~ signed distance to the lesion surface
    weight = 1.0 / (1.0 + np.exp(-inside_mm / np.float32(lesion.edge_mm * 0.5)))
    tumor_hu = np.float32(lesion.base_hu) + SmoothField(rng, rng.uniform(5.0, 12.0), (4.0, 14.0), 8)(*coords)
    if lesion.rim_hu:
        tumor_hu = tumor_hu + np.float32(lesion.rim_hu) * np.exp(-((inside_mm - lesion.rim_mm / 2) / lesion.rim_mm) ** 2)
    if lesion.necrosis_fraction:
        core = 1.0 / (1.0 + np.exp((rn - lesion.necrosis_fraction) / 0.06))
        tumor_hu = tumor_hu * (1 - core) + np.float32(lesion.necrosis_hu) * core
    organ = canvas.owner[box] == organ_id
    label = _attached_to_organ(allowed & (weight >= 0.5), organ)
    if not (ndi.binary_dilation(label) & organ & ~label).any():
        return 0  # it would swallow all the organ around it (coarse grids): drop it, unlabelled organ stays
    # blend only around the kept lesion: detached islands would be unlabelled "tumor" HU
    blend = allowed & ndi.binary_dilation(label, iterations=2)
    region_hu = canvas.hu[box]
    region_hu[blend] = (region_hu * (1 - weight) + tumor_hu * weight)[blend]
    canvas.owner[box][label] = TUMOR
    return int(label.sum())


def _attached_to_organ(label: np.ndarray, organ: np.ndarray) -> np.ndarray:
    """Keep the connected parts of ``label`` that lie in or touch (6-neighbourhood) the organ."""
    components, n = ndi.label(label)
    if n == 0:
        return label
    touching = np.unique(components[ndi.binary_dilation(organ) & label])
    return np.isin(components, touching[touching > 0])


def _lobulated_radius(coords, lesion: Lesion, rng) -> np.ndarray:
    """Normalised radius of the union of the main sphere and its lobes, with a wavy surface."""
    cx, cy, cz = lesion.center_mm
    spheres = [(0.0, 0.0, 0.0, lesion.radius_mm), *lesion.lobes]
    best = None
    for dx, dy, dz, radius in spheres:
        dist = np.sqrt((coords[0] - cx - dx) ** 2 + (coords[1] - cy - dy) ** 2 + (coords[2] - cz - dz) ** 2)
        # normalise by the main radius so the profile (rim, necrosis) is shared by all lobes
        value = (dist - np.float32(radius)) / np.float32(lesion.radius_mm) + 1.0
        best = value if best is None else np.minimum(best, value)
    wave = SmoothField(rng, 0.07, (lesion.radius_mm * 0.8 + 2, lesion.radius_mm * 2.5 + 4))(*coords)
    return best - wave


def _allowed_region(canvas: Canvas, box, organ_id: int, margin_mm: float) -> np.ndarray:
    """Organ voxels plus fat / bowel within ``margin_mm`` of it; never bone, vessels, muscle, other organs."""
    owner = canvas.owner[box]
    organ = (owner == organ_id) | (owner == TUMOR)
    if not organ.any():
        return organ
    outside = ndi.distance_transform_edt(~organ, sampling=canvas.grid.spacing)
    # lesions push into fat; they do not grow into bone, vessels, muscle or another organ
    forbidden = np.isin(owner, [BONE, VESSEL, MUSCLE, *[o for o in SOLID_ORGANS if o != organ_id]])
    return (outside <= margin_mm) & ~forbidden & canvas.cavity[box]
