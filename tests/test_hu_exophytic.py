"""The outer part of an exophytic Hu kidney tumor replaces fat and soft tissue only.

On a phantom CT with liver, spleen, pancreas, vessels, bowel and bone around the kidneys, a
large kidney tumor left unclipped (the official rule: half the medium/large ones) used to
overwrite liver, spleen and vertebrae. Now: with the other structures' labels none of them
changes; with the organ mask alone (HU ranges, synthesis.exophytic) bone and gas do not.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from benchmark.data.phantom import anatomy_ct
from benchmark.data.phantom_anatomy import AIR, BONE, KIDNEY, LIVER, PANCREAS, SPLEEN, VESSEL
from synthesis.exophytic import SOFT_TISSUE_HU
from synthesis.hu import HuGenerator

LABELLED = (LIVER, SPLEEN, PANCREAS, VESSEL, BONE)


@pytest.fixture(scope="module")
def phantom():
    """(ct HU float32, structure id per voxel) of a seeded 2 mm phantom."""
    ct, owner = anatomy_ct((2.0, 2.0, 2.0), seed=0)
    return ct.astype(np.float32), owner


def _exophytic_draws(ct, owner, other_organs):
    """The exophytic tumors among large kidney draws of seeds 0..5: (params, new CT, mask)."""
    generator = HuGenerator("kidney", size_probs={"large": 1.0})
    organ = owner == KIDNEY
    draws = []
    for seed in range(6):
        out = generator(ct[None], organ[None], (2.0, 2.0, 2.0), np.random.default_rng(seed),
                        other_organs=None if other_organs is None else other_organs[None])
        if not out.params[0]["geometry"]["clip_to_organ"]:
            draws.append((out.params[0], out.ct_hu[0], out.tumor_mask[0]))
    assert len(draws) >= 3
    return draws


def test_with_labels_no_other_structure_changes(phantom):
    ct, owner = phantom
    organ, others = owner == KIDNEY, np.isin(owner, LABELLED)
    generator = HuGenerator("kidney")
    for params, new, mask in _exophytic_draws(ct, owner, others):
        changed = new != ct
        assert not (changed & others).any() and not (mask & others).any()
        assert not (changed & (owner == AIR)).any()
        assert (mask & ~organ).sum() > 0.3 * mask.sum()  # still exophytic: the official rule is kept
        again, again_mask = generator.replay(ct, organ, json.loads(json.dumps(params)), other_organs=others)
        np.testing.assert_array_equal(again, new)
        np.testing.assert_array_equal(again_mask, mask)


def test_without_labels_bone_and_gas_are_spared_by_hu(phantom):
    ct, owner = phantom
    organ = owner == KIDNEY
    low, high = SOFT_TISSUE_HU
    for _, new, mask in _exophytic_draws(ct, owner, None):
        changed = new != ct
        assert not (changed & np.isin(owner, (BONE, AIR))).any()
        outer = (changed | mask) & ~organ
        assert outer.sum() > 1000 and ((ct[outer] >= low) & (ct[outer] <= high)).all()


def test_synthesize_files_respects_the_other_labels_of_a_multi_label_mask(phantom, tmp_path):
    """`tumorbench synthesize CT LABELS --label K`: the other labels of the mask are never replaced."""
    import nibabel as nib

    from benchmark.synthesize import synthesize_files

    ct, owner = phantom
    labels = np.where(np.isin(owner, LABELLED + (KIDNEY,)), owner, 0).astype(np.uint8)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    nib.save(nib.Nifti1Image(ct, affine), tmp_path / "ct.nii.gz")
    nib.save(nib.Nifti1Image(labels, affine), tmp_path / "labels.nii.gz")
    out = synthesize_files(tmp_path / "ct.nii.gz", tmp_path / "labels.nii.gz", tmp_path / "out", organ="kidney",
                           label=KIDNEY, size="large", seed=0, progress=False)  # seed 0: exophytic (above)
    params = json.loads((out / "params.json").read_text())
    assert params["tumors"][0]["geometry"]["clip_to_organ"] is False
    new = np.asarray(nib.load(out / "ct.nii.gz").dataobj)
    tumor = np.asarray(nib.load(out / "tumor.nii.gz").dataobj) != 0
    others = (labels != 0) & (labels != KIDNEY)
    assert (tumor & (labels == 0)).any()  # an outer part in the unlabelled tissue
    assert not ((new != ct) & others).any() and not (tumor & others).any()
