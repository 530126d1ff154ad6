"""Example TumorBench generator plug-in: a dark sphere with a soft edge, inside the organ.

Everything a generator needs: a factory with metadata, a class following
``synthesis.protocol.TumorGenerator`` (batch of HU crops in, ``SynthesisOutput`` out, all
randomness from the ``rng`` argument, one JSON-serialisable params dict per tumor), and
``replay`` so ``tumorbench synthesize --replay`` reproduces a tumor from its params.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from synthesis.errors import SynthesisInputError
from synthesis.protocol import SynthesisOutput
from synthesis.registry import tumor_generator


class SphereGenerator:
    name = "sphere"
    device = "cpu"  # plain numpy: the trainer may run it in its DataLoader workers

    def __init__(self, organ: str, radius_mm: tuple[float, float] = (4.0, 12.0), contrast_hu: float = 60.0):
        if not 0 < radius_mm[0] <= radius_mm[1]:
            raise SynthesisInputError(f"radius_mm {radius_mm}: expected 0 < low <= high")
        self.organ, self.radius_mm, self.contrast_hu = organ, tuple(radius_mm), float(contrast_hu)

    def sample(self, organ_mask: np.ndarray, spacing: Sequence[float], rng: np.random.Generator) -> dict[str, Any]:
        inside = np.argwhere(organ_mask)
        if inside.size == 0:
            raise SynthesisInputError("organ mask: empty (no voxel to place a tumor in)")
        centre = inside[int(rng.integers(len(inside)))]
        return {"method": self.name, "centre": [int(c) for c in centre], "spacing": [float(s) for s in spacing],
                "radius_mm": float(rng.uniform(*self.radius_mm)), "contrast_hu": self.contrast_hu}

    def replay(self, ct_hu: np.ndarray, organ_mask: np.ndarray, params: Mapping[str, Any]
               ) -> tuple[np.ndarray, np.ndarray]:
        """Pure function of (CT, organ, params): the same params give the same tumor."""
        grid = np.ogrid[tuple(slice(0, n) for n in ct_hu.shape)]
        dist = np.sqrt(sum(((g - c) * s) ** 2 for g, c, s in zip(grid, params["centre"], params["spacing"])))
        weight = np.clip((params["radius_mm"] + 1.0 - dist) / 2.0, 0.0, 1.0) * organ_mask  # 2 mm soft edge
        ct = (ct_hu - params["contrast_hu"] * weight).astype(np.float32)
        return ct, (weight >= 0.5) & organ_mask.astype(bool)

    def __call__(self, ct_hu: np.ndarray, organ_mask: np.ndarray, spacing: Sequence[float],
                 rng: np.random.Generator) -> SynthesisOutput:
        cts, masks, params = [], [], []
        for ct, organ in zip(ct_hu, organ_mask):
            p = self.sample(organ, spacing, rng)
            new_ct, mask = self.replay(ct, organ, p)
            cts.append(new_ct)
            masks.append(mask)
            params.append(p)
        return SynthesisOutput(ct_hu=np.stack(cts), tumor_mask=np.stack(masks), params=tuple(params))


@tumor_generator(
    display_name="Sphere (example plug-in)", licence="Apache-2.0", needs_weights=False, replayable=True,
    devices=("cpu",), description="a dark sphere of 4-12 mm radius with a 2 mm soft edge, inside the organ",
    kwargs={"radius_mm": "(low, high) radius range in mm", "contrast_hu": "HU removed at the centre"})
def make_sphere(organ: str, *, radius_mm: Sequence[float] = (4.0, 12.0), contrast_hu: float = 60.0) -> SphereGenerator:
    return SphereGenerator(organ, radius_mm=tuple(float(r) for r in radius_mm), contrast_hu=contrast_hu)
