"""DiffTumor on a whole CT whose tumor's ellipsoids lie farther apart than one model crop.

Regression: a small kidney tumor with one ellipsoid in each kidney of a 3 mm CT (models at 2 mm)
was reported (params ``empty: false``) but nothing was generated: the single model window sat
between the kidneys, so the CT was unchanged and the mask all zero.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from _difftumor_fixtures import untrained_generator

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

SPACING_3MM = (3.0, 3.0, 3.0)


def _two_kidneys():
    """(ct, organ) at 3 mm: two balls of radius 5 voxels 96 mm apart (the model window is
    16 voxels at 2 mm = 11 voxels here), soft tissue around."""
    grid = np.ogrid[:48, :20, :20]
    organ = np.zeros((48, 20, 20), bool)
    for x in (8, 40):
        organ |= (grid[0] - x) ** 2 + (grid[1] - 10) ** 2 + (grid[2] - 10) ** 2 <= 25
    ct = np.where(organ, 150.0, 30.0).astype(np.float32)
    ct += np.random.default_rng(0).normal(0.0, 5.0, ct.shape).astype(np.float32)
    return ct, organ


def test_every_ellipsoid_is_generated_even_in_the_other_kidney():
    generator = untrained_generator("kidney", blur_sigma_mm=(0.0, 1.0))
    ct, organ = _two_kidneys()
    split = 0
    for seed in range(6):
        out = generator(ct[None], organ[None], SPACING_3MM, np.random.default_rng(seed))
        mask, params, new = out.tumor_mask[0], out.params[0], out.ct_hu[0]
        centres = params["geometry"]["centres"]
        split += len({c[0] < 24 for c in centres}) == 2
        assert not params["empty"] and mask.any()
        for centre in centres:  # each reported ellipsoid has generated voxels around its centre
            near = tuple(slice(max(c - 3, 0), c + 4) for c in centre)
            assert mask[near].any(), (seed, centre)
        changed = new != ct
        assert changed[mask].mean() > 0.9, seed
        reach = int(np.ceil(4 * params["blur_sigma_mm"] / 3.0)) + 1
        assert not (changed & ~ndimage.binary_dilation(mask, np.ones((3, 3, 3), bool), iterations=reach)).any()
        again, again_mask = generator.replay(ct, organ, json.loads(json.dumps(params)))
        np.testing.assert_array_equal(again, new)
        np.testing.assert_array_equal(again_mask, mask)
    assert split >= 2  # the seeds above do put ellipsoids of one tumor in both kidneys
