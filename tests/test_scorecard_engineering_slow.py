"""The whole engineering section in quick mode (slow: spawned workers, four spacings).

The example sphere plug-in and Hu pass everything, and so does DiffTumor on kidney with a tiny
checkpoint (its exophytic parts were refused before issue 31's fix was ported to it); a plug-in
that draws from ``np.random`` instead of its rng is refused for replay and for determinism across
worker counts. Plug-ins are
installed into a folder of their own (entry points), so the spawned workers find them too.
"""
from __future__ import annotations

import json

import pytest

from test_generators_plugins import EXAMPLE, _dist_info_by_hand

from benchmark.scorecard.engineering import engineering_section

pytestmark = pytest.mark.slow

SEEDLESS = '''
import numpy as np
from tumorbench_sphere import SphereGenerator
from synthesis.registry import tumor_generator


class Seedless(SphereGenerator):
    name = "seedless"

    def sample(self, organ_mask, spacing, rng):
        return super().sample(organ_mask, spacing, np.random.default_rng(np.random.randint(2**31)))


@tumor_generator(display_name="Seedless (test)", licence="Apache-2.0", replayable=True)
def make_seedless(organ):
    return Seedless(organ)
'''


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site = tmp_path_factory.mktemp("scorecard_plugins")
    _dist_info_by_hand(EXAMPLE, site)
    (site / "tb_seedless.py").write_text(SEEDLESS)
    info = site / "tb_seedless-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tb-seedless\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[tumorbench.generators]\nseedless = tb_seedless:make_seedless\n")
    return site


@pytest.mark.parametrize("name", ["sphere", "hu"])
def test_sphere_plugin_and_hu_pass_everything(site, monkeypatch, name):
    monkeypatch.syspath_prepend(str(site))
    section = engineering_section(name, "kidney", quick=True, progress=False)
    json.dumps(section)  # JSON-serialisable
    assert section["refusals"] == []
    assert section["replay"]["ok"] and section["determinism_workers"]["ok"] and section["exophytic"]["ok"]
    assert set(section["consistency"]) == {"1mm", "2mm", "3mm", "0.8x0.8x5mm"}
    assert all(result["ok"] and result["n_reported"] == 2 for result in section["consistency"].values())
    bins = {"default"} if name == "sphere" else {"tiny", "small", "medium", "large"}
    assert set(section["timing"]) == bins
    for row in section["timing"].values():
        assert row["ms_per_tumor"] > 0 and row["ratio"] == pytest.approx(row["ms_per_tumor"] / row["hu_ms_per_tumor"],
                                                                         rel=1e-2)
    assert section["peak_memory_mb"] > 0 and section["small_organ_failure"]["n"] == 8


@pytest.fixture(scope="module")
def tiny_kidney_checkpoint(tmp_path_factory):
    """A tiny DiffTumor checkpoint (2 steps per model) trained on a 2 mm kidney phantom."""
    from benchmark.cli import main

    root = tmp_path_factory.mktemp("difftumor_kidney")
    data, ckpt = str(root / "data"), str(root / "ckpt")
    assert main(["data", "phantom", "--out", data, "--organ", "kidney", "--cases", "5"]) == 0
    assert main(["generators", "train", "autoencoder", data, "--out", ckpt, "--preset", "tiny", "--steps", "2"]) == 0
    for flag in ("--early", "--non-early"):
        assert main(["generators", "train", "diffusion", data, "--autoencoder", ckpt, flag, "--out", ckpt,
                     "--steps", "2"]) == 0
    return ckpt


def test_difftumor_kidney_has_no_exophytic_refusal(tiny_kidney_checkpoint):
    section = engineering_section("difftumor", "kidney", generator_kwargs={"checkpoint": tiny_kidney_checkpoint},
                                  quick=True, progress=False)
    exophytic = section["exophytic"]
    assert exophytic["ok"] and exophytic["n_with_outer_part"] >= 1, exophytic
    assert not any(r.startswith("exophytic") for r in section["refusals"])
    assert section["refusals"] == []


def test_a_seedless_plugin_is_refused(site, monkeypatch):
    monkeypatch.syspath_prepend(str(site))
    section = engineering_section("seedless", "liver", quick=True, progress=False)
    reasons = section["refusals"]
    assert any(r.startswith("replay: ") and "same seed" in r for r in reasons)
    assert any(r.startswith("determinism across worker counts") for r in reasons)
