"""Engineering checks of the generator scorecard (benchmark/scorecard/engineering.py).

Fakes here are small generators that break one property each on purpose: they are the
generators the checks must refuse. Real generators (Hu, the sphere plug-in) must pass.
"""
from __future__ import annotations

import numpy as np
import pytest

from benchmark.scorecard.eng_cases import phantom_case, small_organs
from benchmark.scorecard.eng_checks import consistency_check, exophytic_check, replay_check, small_organ_check
from benchmark.scorecard.engineering import refusals
from synthesis.hu import HuGenerator
from synthesis.protocol import SynthesisOutput


@pytest.fixture(scope="module")
def case():
    return phantom_case("kidney", (3.0, 3.0, 3.0), seed=0)


class Ball:
    """A dark ball of 3 voxels radius at a random organ voxel; ``replay`` redraws it from params."""

    name = "ball"

    def __init__(self, seedless: bool = False):
        self.seedless = seedless

    def _params(self, organ, rng):
        inside = np.argwhere(organ)
        source = np.random if self.seedless else rng  # seedless: global randomness, not the rng given
        return {"method": "ball", "centre": [int(v) for v in inside[int(source.integers(len(inside)))
                                                                       if not self.seedless else
                                                                       source.randint(len(inside))]]}

    def replay(self, ct, organ, params):
        grid = np.ogrid[tuple(slice(0, n) for n in ct.shape)]
        mask = (sum((g - c) ** 2 for g, c in zip(grid, params["centre"])) <= 9) & organ
        return np.where(mask, ct - 50.0, ct).astype(np.float32), mask

    def __call__(self, ct_hu, organ_mask, spacing, rng):
        params = [self._params(organ, rng) for organ in organ_mask]
        drawn = [self.replay(ct, organ, p) for ct, organ, p in zip(ct_hu, organ_mask, params)]
        return SynthesisOutput(np.stack([d[0] for d in drawn]), np.stack([d[1] for d in drawn]), tuple(params))


class Broken(Ball):
    """Reports a tumor but breaks the output: ``mode`` empty (no mask, CT unchanged, the old
    DiffTumor window bug), unchanged (mask but CT unchanged), far (also changes a far corner),
    bone (the tumor also overwrites bone), bone_label (bone labelled as tumor, CT left as it is)."""

    def __init__(self, mode: str, bone: np.ndarray | None = None):
        super().__init__()
        self.mode, self.bone = mode, bone

    def replay(self, ct, organ, params):
        new, mask = super().replay(ct, organ, params)
        if self.mode == "empty":
            return ct.astype(np.float32), np.zeros_like(mask)
        if self.mode == "unchanged":
            return ct.astype(np.float32), mask
        if self.mode == "far":
            new[:3, :3, :3] += 100.0
        if self.mode in ("bone", "bone_label"):  # overwrite bone / only label it as tumor
            new[self.bone] = 150.0 if self.mode == "bone" else new[self.bone]
            mask = mask | self.bone
        return new, mask

    def _params(self, organ, rng):
        return {**super()._params(organ, rng), "empty": False}


def test_a_plugin_that_ignores_its_seed_fails_replay(case):
    assert replay_check(Ball(), case, 2, seed=0)["ok"]
    result = replay_check(Ball(seedless=True), case, 2, seed=0)
    assert not result["ok"] and "same seed" in result["detail"]


def test_a_generator_without_replay_fails_replay(case):
    class NoReplay:
        def __call__(self, *args):
            return Ball()(*args)

    assert replay_check(NoReplay(), case, 1, seed=0) == {"ok": False,
                                                          "detail": "the generator has no replay(ct, organ_mask, params)"}


@pytest.mark.parametrize("mode,fault", [("empty", "empty_mask"), ("unchanged", "unchanged"), ("far", "far_change")])
def test_a_reported_tumor_without_its_change_fails_consistency(case, mode, fault):
    assert consistency_check(Ball(), case, 3, seed=0)["ok"]
    result = consistency_check(Broken(mode), case, 3, seed=0)
    assert not result["ok"] and result[fault] == 3 and result["n_reported"] == 3


def test_exophytic_check_catches_bone_and_passes_hu_kidney_tumors(case):
    bone = case.forbidden()["bone"]
    result = exophytic_check(Broken("bone", bone), case, 2, seed=0)
    assert not result["ok"] and result["violations_voxels"]["bone"] == 2 * bone.sum()  # 2 tumors, every bone voxel
    labelled = exophytic_check(Broken("bone_label", bone), case, 2, seed=0)  # CT unchanged, bone in the mask
    assert not labelled["ok"] and labelled["violations_in_mask_voxels"]["bone"] == 2 * bone.sum()
    assert labelled["violations_voxels"]["other_organs"] == 0
    hu = exophytic_check(HuGenerator("kidney", size_probs={"medium": 0.5, "large": 0.5}),
                         phantom_case("kidney", (2.0, 2.0, 2.0)), 4, seed=0)
    assert hu["ok"] and hu["n_with_outer_part"] >= 1 and hu["outer_fraction_mean"] > 0.2


def test_small_organ_failures_are_counted_with_a_wilson_interval(case):
    organs = small_organs(case, 5, seed=0)
    assert all(0 < o.sum() < case.organ.sum() for o in organs)
    good = small_organ_check(Ball(), case, organs, seed=0)
    assert good["rate"] == 0.0 and good["n"] == 5 and good["ci"][0] == 0.0 and 0.4 < good["ci"][1] < 0.5
    bad = small_organ_check(Broken("empty"), case, organs, seed=0)
    assert bad["rate"] == 1.0 and bad["by_kind"]["empty_mask"] == 5 and bad["ci"][1] == pytest.approx(1.0)


def test_each_failed_property_is_a_refusal_reason():
    ok = {"ok": True, "detail": ""}
    good = {"empty_mask": 0, "unchanged": 0, "far_change": 0, "n_tumors": 2, "n_reported": 2, "ok": True}
    section = {"replay": ok, "determinism_workers": ok, "consistency": {"2mm": good, "3mm": good},
               "exophytic": {"violations_voxels": {"bone": 0, "air": 0, "other_organs": 0}, "ok": True}}
    assert refusals(section) == []
    section["replay"] = {"ok": False, "detail": "draw 1: the same seed gave another tumor"}
    section["consistency"]["3mm"] = {**good, "empty_mask": 2, "ok": False}
    section["exophytic"] = {"violations_voxels": {"bone": 40, "air": 0, "other_organs": 7}, "ok": False}
    section["determinism_workers"] = {"ok": False, "detail": "1 of 2 tumors differ"}
    reasons = refusals(section)
    assert len(reasons) == 4
    assert reasons[0].startswith("replay: draw 1") and reasons[1].startswith("determinism across worker counts")
    assert reasons[2].startswith("consistency at 3mm") and "2 with an empty mask" in reasons[2]
    assert "bone 40 voxels" in reasons[3] and "other_organs 7 voxels" in reasons[3] and "air" not in reasons[3]
