"""Tiny NIfTI cases and a counting tumor generator for the models/ tests.

A case is an air background (-1000 HU), an ellipsoidal body, a bright ellipsoidal organ
(~100 HU, noisy) and, for labeled cases, a dark spherical tumor (~30 HU). The body HU is a
marker of the case kind: exactly 21 HU for healthy cases, 20 HU for labeled ones, so a test can
tell from a crop which kind of case it came from.
"""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from synthesis.protocol import SynthesisOutput

HEALTHY_BODY_HU = 21.0
LABELED_BODY_HU = 20.0
SPACING = (2.0, 2.0, 2.0)


def _ellipsoid(shape, center, radii) -> np.ndarray:
    grid = np.indices(shape, dtype=np.float32)
    dist = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, center, radii))
    return dist <= 1.0


def make_case(shape, healthy: bool, rng: np.random.Generator, tumor_radius: float = 4.0):
    """(ct_hu float32, labels uint8) for one phantom case."""
    center = np.array(shape) / 2.0
    body = _ellipsoid(shape, center, np.array(shape) * 0.46)
    organ = _ellipsoid(shape, center + rng.uniform(-2, 2, 3), np.array(shape) * 0.3)
    ct = np.full(shape, -1000.0, dtype=np.float32)
    ct[body] = HEALTHY_BODY_HU if healthy else LABELED_BODY_HU
    ct[organ] = 100.0 + rng.normal(0.0, 10.0, int(organ.sum()))
    labels = organ.astype(np.uint8)
    if not healthy:
        organ_voxels = np.argwhere(_ellipsoid(shape, center, np.array(shape) * 0.3 - tumor_radius))
        tumor = _ellipsoid(shape, organ_voxels[rng.integers(len(organ_voxels))], [tumor_radius] * 3) & organ
        ct[tumor] = 30.0 + rng.normal(0.0, 5.0, int(tumor.sum()))
        labels[tumor] = 2
    return ct, labels


def affine_for(spacing=SPACING, origin=(-40.0, 12.5, 3.0)) -> np.ndarray:
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = origin
    return affine


def write_case(root: Path, case_id: str, shape, healthy: bool, rng, affine=None) -> dict:
    """Write ``root/<case_id>/{ct,labels}.nii.gz``; return the training item."""
    ct, labels = make_case(shape, healthy, rng)
    affine = affine_for() if affine is None else affine
    folder = Path(root) / case_id
    folder.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(ct, affine), str(folder / "ct.nii.gz"))
    nib.save(nib.Nifti1Image(labels, affine), str(folder / "labels.nii.gz"))
    return {"case_id": case_id, "image": str(folder / "ct.nii.gz"), "label": str(folder / "labels.nii.gz"),
            "healthy": healthy, "age": 60, "sex": "F"}


def make_items(root: Path, n_labeled: int, n_healthy: int, seed: int = 0, shape=(40, 36, 32)) -> list[dict]:
    rng = np.random.default_rng(seed)
    items = [write_case(root, f"lab{i}", shape, False, rng) for i in range(n_labeled)]
    return items + [write_case(root, f"hea{i}", shape, True, rng) for i in range(n_healthy)]


class CountingGenerator:
    """TumorGenerator for tests: a dark sphere at a random organ voxel of each crop; records
    every call (batch size and the crops' body-marker HU values)."""

    name = "counting"
    organ = "liver"

    def __init__(self, radius: float = 3.0):
        self.radius = radius
        self.calls: list[int] = []
        self.crop_markers: list[set] = []
        self.warm_ups = 0

    def warm_up(self):
        self.warm_ups += 1

    def __call__(self, ct_hu, organ_mask, spacing, rng):
        ct = np.array(ct_hu, dtype=np.float32, copy=True)
        tumor = np.zeros(ct.shape, dtype=bool)
        self.calls.append(len(ct))
        for b in range(len(ct)):
            markers = {float(v) for v in (HEALTHY_BODY_HU, LABELED_BODY_HU) if np.any(ct[b] == v)}
            self.crop_markers.append(markers)
            voxels = np.argwhere(organ_mask[b])
            if len(voxels) == 0:
                continue
            center = voxels[rng.integers(len(voxels))]
            tumor[b] = _ellipsoid(ct.shape[1:], center, [self.radius] * 3) & organ_mask[b]
            ct[b][tumor[b]] = 30.0
        return SynthesisOutput(ct_hu=ct, tumor_mask=tumor, params=tuple({"n": 1} for _ in range(len(ct))))
