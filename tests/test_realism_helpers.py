"""Tiny on-disk datasets and a toy generator for the realism tests (+ tests of the crop helpers).

The phantom of benchmark.data is not required: these helpers write the canonical layout directly
so the realism code is tested against files exactly as it reads them.
"""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from synthesis.protocol import SynthesisOutput

SHAPE = (40, 40, 28)
SPACING = (2.0, 2.0, 2.0)
ORGAN_HU = {"liver": 60.0, "pancreas": 40.0, "kidney": 150.0}
SIZE_RADIUS_MM = {"tiny": 4.0, "small": 8.0, "medium": 13.0, "large": 16.0}


def _grid():
    return np.stack(np.meshgrid(*[np.arange(s) * sp for s, sp in zip(SHAPE, SPACING)], indexing="ij"))


def _sphere(centre_mm, radius_mm, scale=(1.0, 1.0, 1.0)) -> np.ndarray:
    g = _grid()
    return sum(((g[a] - centre_mm[a]) / (radius_mm * scale[a])) ** 2 for a in range(3)) <= 1.0


def write_dataset(root: Path, organ: str, n_labeled: int, n_healthy: int, seed: int,
                  radii=(3.0, 5.0, 7.0, 9.0, 12.0, 15.0)) -> Path:
    """Canonical dataset with an ellipsoid organ; labeled cases get 2 spherical tumors each."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    organ_mask = _sphere((40.0, 40.0, 28.0), 30.0, scale=(1.0, 0.8, 0.8))
    rows = []
    for i in range(n_labeled + n_healthy):
        case_id, healthy = f"{organ}_{i:03d}", i >= n_labeled
        ct = rng.normal(-80, 20, SHAPE)
        ct[organ_mask] = rng.normal(ORGAN_HU[organ], 12, int(organ_mask.sum()))
        labels = organ_mask.astype(np.uint8)
        if not healthy:
            for k, x in enumerate((26.0, 54.0)):
                radius = float(rng.choice(radii))
                tumor = _sphere((x, 40.0 + 4 * k, 28.0), radius) & organ_mask
                ct[tumor] = rng.normal(ORGAN_HU[organ] - 45, 15, int(tumor.sum()))
                labels[tumor] = 2
        folder = root / "cases" / case_id
        folder.mkdir(parents=True)
        affine = np.diag([*SPACING, 1.0])
        nib.save(nib.Nifti1Image(ct.astype(np.float32), affine), folder / "ct.nii.gz")
        nib.save(nib.Nifti1Image(labels, affine), folder / "labels.nii.gz")
        rows.append(f"{case_id},60,M,{int(not healthy)},{'healthy' if healthy else 'labeled'},toy")
    (root / "dataset.json").write_text(json.dumps({"name": f"toy_{organ}", "organ": organ,
        "labels": {"background": 0, "organ": 1, "tumor": 2}, "spacing": list(SPACING),
        "source_format": "phantom", "num_cases": len(rows)}))
    (root / "cases.csv").write_text("case_id,age,sex,has_tumor,role,source\n" + "\n".join(rows) + "\n")
    return root


class SphereGenerator:
    """Toy TumorGenerator: one darker sphere of the drawn size type at a random organ voxel."""

    name = "sphere"

    def __init__(self, organ, *, device="cpu", checkpoint=None, size_probs=None, contrast=45.0):
        self.organ, self.size_probs, self.contrast = organ, size_probs or {"tiny": 1.0}, contrast

    def __call__(self, ct_hu, organ_mask, spacing, rng):
        types, probs = zip(*self.size_probs.items())
        out_ct, masks, params = np.array(ct_hu, np.float32), np.zeros(ct_hu.shape, bool), []
        for b in range(ct_hu.shape[0]):
            size_type = str(rng.choice(types, p=np.asarray(probs) / sum(probs)))
            centre = np.argwhere(organ_mask[b])[rng.integers(int(organ_mask[b].sum()))]
            g = np.stack(np.meshgrid(*[np.arange(s) for s in ct_hu.shape[1:]], indexing="ij"))
            dist = np.sqrt(sum(((g[a] - centre[a]) * spacing[a]) ** 2 for a in range(3)))
            mask = (dist <= SIZE_RADIUS_MM[size_type]) & organ_mask[b]
            out_ct[b][mask] -= self.contrast
            masks[b] = mask
            params.append({"size_type": size_type, "centre": centre.tolist()})
        return SynthesisOutput(out_ct, masks, tuple(params))


@pytest.fixture
def toy_generator(monkeypatch):
    """Make ``make_generator("sphere", ...)`` build the toy generator."""
    import synthesis.registry as registry

    real = registry.make_generator
    monkeypatch.setattr(registry, "make_generator",
                        lambda name, organ, **kw: SphereGenerator(organ, **kw) if name.startswith("sphere") else real(name, organ, **kw))
    return SphereGenerator


def test_size_bins_and_types_follow_the_paper_thresholds():
    from benchmark.realism_crops import size_bin, size_type_for_radius

    assert [size_bin(r) for r in (0.5, 5.0, 9.99, 10.0, 17.0, 20.0, 40.0)] == \
        ["0-5", "5-10", "5-10", "10-15", "15-20", "20+", "20+"]
    assert [size_type_for_radius(r) for r in (4, 8, 16, 32)] == ["tiny", "small", "medium", "large"]


def test_components_and_crop_boxes_contain_the_tumor():
    from benchmark.realism_crops import CropSettings, components, context_box, equivalent_radius, roi_box

    mask = _sphere((20.0, 20.0, 20.0), 6.0) | _sphere((60.0, 60.0, 40.0), 4.0)
    mask[0, 0, 0] = True  # a 1-voxel speck is below the 8-voxel minimum
    comps = components(mask, min_voxels=8)
    assert len(comps) == 2
    big = max(comps, key=np.sum)
    # equivalent radius of a voxelised 6 mm sphere at 2 mm spacing is close to 6 mm
    assert abs(equivalent_radius(int(big.sum()), SPACING) - 6.0) < 1.0
    roi = roi_box(big, margin=2)
    assert big[roi].sum() == big.sum()
    assert all(s.start >= 0 and s.stop <= n for s, n in zip(roi, SHAPE))
    ctx = context_box(big, SPACING, CropSettings(context_inplane_mm=40.0, context_z_margin_mm=4.0))
    assert big[ctx].sum() == big.sum()
    assert (ctx[0].stop - ctx[0].start, ctx[1].stop - ctx[1].start) == (20, 20)
