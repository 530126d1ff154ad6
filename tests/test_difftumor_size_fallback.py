"""DiffTumor on crops of small organs: a 'large' draw falls back to a smaller size (as Hu does)."""
import numpy as np
import pytest

from synthesis.difftumor.generator import DiffTumorGenerator
from synthesis.errors import SynthesisInputError

SPACING = (2.0, 2.0, 2.0)


def _small_organ_crop():
    """A 7 mL ellipsoid organ (radius 12 mm): holds tiny/small tumors, not a large one (58 mL)."""
    grid = np.indices((40, 40, 40)).astype(np.float32)
    dist = sum(((g - 20) * s / 12.0) ** 2 for g, s in zip(grid, SPACING))
    organ = (dist <= 1.0)[None]
    return np.where(organ, 60.0, -100.0).astype(np.float32), organ


def _darkening_pipeline(ct_w, organ_w, mask_w, generator, blur_sigmas):
    """Stand-in for a trained pipeline: tumor voxels 80 HU darker (the size logic is under test)."""
    return ct_w - 80.0 * mask_w


def _generator(size_probs):
    pipelines = {"early": _darkening_pipeline, "nonearly": _darkening_pipeline}
    return DiffTumorGenerator("kidney", size_probs=size_probs, pipelines=pipelines, crop_size=(16, 16, 16))


def test_large_draw_on_small_organ_falls_back_to_smaller_size():
    ct, organ = _small_organ_crop()
    generator = _generator({"small": 0.5, "large": 0.5})
    outputs = [generator(ct, organ, SPACING, np.random.default_rng(seed)) for seed in range(8)]
    assert {out.params[0]["size_type"] for out in outputs} == {"small"}
    assert {out.params[0]["stage"] for out in outputs} == {"early"}
    for out in outputs:
        assert out.tumor_mask.any() and not (out.tumor_mask & ~organ).any()
        assert out.ct_hu[out.tumor_mask].mean() == pytest.approx(60.0 - 80.0)


def test_fixed_large_size_on_small_organ_still_raises():
    ct, organ = _small_organ_crop()
    with pytest.raises(SynthesisInputError, match="too small for a 'large'"):
        _generator({"large": 1.0})(ct, organ, SPACING, np.random.default_rng(0))
