"""Small synthetic CT cases for the DiffTumor tests: a bright ellipsoid organ with dark round tumors.

Used until/unless the phantom dataset is wanted; arrays are in HU at 2 mm spacing.
"""
from __future__ import annotations

import numpy as np

ORGAN_HU, TUMOR_HU, FAT_HU = 120.0, 0.0, -100.0
SPACING = (2.0, 2.0, 2.0)


def make_case(seed: int, shape=(48, 48, 48), tumor_radii=(3, 4, 7)) -> tuple[np.ndarray, np.ndarray]:
    """(ct HU float32, labels uint8 0/1/2) with an ellipsoid organ and spherical tumors inside."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij"))
    center = np.array(shape, dtype=np.float32)[:, None, None, None] / 2
    radii = np.array([s * 0.38 for s in shape], dtype=np.float32)[:, None, None, None]
    organ = (((grid - center) / radii) ** 2).sum(0) <= 1.0
    label = organ.astype(np.uint8)
    ct = np.full(shape, FAT_HU, np.float32)
    ct[organ] = ORGAN_HU
    coords = np.argwhere(organ)
    for radius in tumor_radii:
        for _ in range(50):
            c = coords[rng.integers(len(coords))]
            ball = ((grid - c[:, None, None, None]) ** 2).sum(0) <= radius ** 2
            if (organ[ball]).all():
                break
        ct[ball] = TUMOR_HU
        label[ball] = 2
    ct += rng.normal(0.0, 8.0, shape).astype(np.float32)
    return ct, label


def make_items(n: int = 4, seed: int = 0, **kwargs) -> list[dict]:
    """Training items with in-memory arrays (``image``/``label`` arrays + ``spacing``)."""
    items = []
    for index in range(n):
        ct, label = make_case(seed + index, **kwargs)
        items.append({"case_id": f"case{index}", "image": ct, "label": label, "healthy": False,
                      "age": None, "sex": None, "spacing": SPACING})
    return items


def install_geometry_standin() -> None:
    """Until synthesis/geometry.py (owner: hu) is merged, register a minimal module with its API
    (spheres of a size-type radius at a random organ voxel, clipped to the organ)."""
    import sys
    import types
    from dataclasses import dataclass

    try:
        import synthesis.geometry  # noqa: F401
        return
    except ModuleNotFoundError:
        pass

    @dataclass(frozen=True)
    class TumorGeometry:
        size_type: str
        organ: str
        centres: tuple
        radii_mm: tuple

    radius_mm = {"tiny": 4.0, "small": 8.0, "medium": 16.0, "large": 32.0}

    def sample_size_type(rng, probs=None):
        probs = probs or {"tiny": 0.4, "small": 0.4, "medium": 0.1, "large": 0.1}
        names = sorted(probs)
        weights = np.array([probs[n] for n in names], dtype=float)
        return names[rng.choice(len(names), p=weights / weights.sum())]

    def sample_geometry(organ_mask, spacing, size_type, organ, rng):
        coords = np.argwhere(organ_mask)
        centre = tuple(int(v) for v in coords[rng.integers(len(coords))])
        return TumorGeometry(size_type, organ, (centre,), ((radius_mm[size_type],) * 3,))

    def render_tumor_mask(organ_mask, spacing, geometry):
        grid = np.indices(organ_mask.shape).astype(np.float32)
        centre = np.array(geometry.centres[0], dtype=np.float32)[:, None, None, None]
        scale = (np.array(geometry.radii_mm[0]) / np.array(spacing))[:, None, None, None]
        return ((((grid - centre) / scale) ** 2).sum(0) <= 1.0) & organ_mask.astype(bool)

    module = types.ModuleType("synthesis.geometry")
    module.TumorGeometry = TumorGeometry
    module.sample_size_type, module.sample_geometry = sample_size_type, sample_geometry
    module.render_tumor_mask = render_tumor_mask
    sys.modules["synthesis.geometry"] = module
    import synthesis

    synthesis.geometry = module
