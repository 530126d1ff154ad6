"""CT cases of the engineering checks: the seeded phantom (benchmark.data.phantom) at any spacing,
cut around the organ, with every structure labelled, plus small organs cut out of it.

No downloads: the phantom has liver, spleen, pancreas, kidneys, vessels, bowel (with gas), muscle,
fat and bone, so a tumor that spills out of its organ has something to overwrite.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from benchmark.data.phantom import anatomy_ct
from benchmark.data.phantom_anatomy import AIR, BONE, KIDNEY, LIVER, ORGAN_IDS, PANCREAS, SPLEEN, VESSEL

#: CT spacings of the consistency check (mm), by label
SPACINGS = {"1mm": (1.0, 1.0, 1.0), "2mm": (2.0, 2.0, 2.0), "3mm": (3.0, 3.0, 3.0),
            "0.8x0.8x5mm": (0.8, 0.8, 5.0)}
LABELLED = (LIVER, SPLEEN, PANCREAS, KIDNEY, VESSEL, BONE)  # what a multi-label mask would hold
MARGIN_MM = 40.0  # kept around the organ: its neighbours (liver, spine, ...) stay in the case
GAS_HU = -500.0  # bowel gas and air: a tumor never replaces it


@dataclass(frozen=True)
class EngCase:
    """One CT: ``ct`` float32 HU, ``owner`` structure id per voxel (phantom_anatomy ids)."""

    ct: np.ndarray
    owner: np.ndarray
    spacing: tuple[float, float, float]
    organ_id: int

    @cached_property
    def organ(self) -> np.ndarray:
        return self.owner == self.organ_id

    @cached_property
    def other_organs(self) -> np.ndarray:
        """Voxels of the other labelled structures (organs, vessels, bone)."""
        return np.isin(self.owner, LABELLED) & ~self.organ

    def forbidden(self) -> dict[str, np.ndarray]:
        """What a tumor must never replace, by kind: bone, air/gas, other labelled organs."""
        return {"bone": self.owner == BONE, "air": (self.owner == AIR) | (self.ct < GAS_HU),
                "other_organs": self.other_organs & (self.owner != BONE)}


def phantom_case(organ: str, spacing, seed: int = 0) -> EngCase:
    """The phantom of ``seed`` at ``spacing`` (same anatomy in mm at every spacing), cut to the
    organ's bounding box plus ``MARGIN_MM``."""
    ct, owner = anatomy_ct(tuple(float(s) for s in spacing), seed)
    organ_id = ORGAN_IDS[organ]
    coords = np.argwhere(owner == organ_id)
    margin = np.ceil(MARGIN_MM / np.asarray(spacing, float)).astype(int)
    lo = np.maximum(coords.min(0) - margin, 0)
    hi = np.minimum(coords.max(0) + 1 + margin, owner.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    return EngCase(np.ascontiguousarray(ct[box], dtype=np.float32), np.ascontiguousarray(owner[box]),
                   tuple(float(s) for s in spacing), organ_id)


def small_organs(case: EngCase, n: int, seed: int, radius_mm=(10.0, 25.0)) -> list[np.ndarray]:
    """``n`` small organ masks: the organ within a ball of radius U(``radius_mm``) around a random
    organ voxel (the organ part of a training crop at the organ's edge; 4-65 mL)."""
    rng = np.random.default_rng([seed, 7])
    inside = np.argwhere(case.organ)
    grid = np.ogrid[tuple(slice(0, s) for s in case.organ.shape)]
    masks = []
    for _ in range(n):
        centre, radius = inside[rng.integers(len(inside))], rng.uniform(*radius_mm)
        dist2 = sum(((g - c) * s) ** 2 for g, c, s in zip(grid, centre, case.spacing))
        masks.append(case.organ & (dist2 <= radius ** 2))
    return masks
