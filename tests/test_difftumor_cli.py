"""`tumorbench generators train` CLI + benchmark.generators on a small canonical dataset (2 training steps)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from _difftumor_fixtures import SPACING, make_case, write_dataset

from benchmark.cli import main


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture
def dataset(tmp_path):
    """Canonical layout: 3 labeled cases + 1 healthy case of 40^3 voxels at 2 mm."""
    return write_dataset(tmp_path / "liver")


def test_cli_trains_all_three_models_and_generator_uses_them(dataset, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    assert main(["generators", "train", "autoencoder", str(dataset), "--out", str(ckpt), "--steps", "2"]) == 0
    for flag in ("--early", "--non-early"):
        assert main(["generators", "train", "diffusion", str(dataset), "--autoencoder", str(ckpt / "autoencoder.pt"),
                     flag, "--out", str(ckpt), "--steps", "2"]) == 0
    meta = json.loads((ckpt / "diffusion_liver_nonearly.json").read_text())
    assert meta["scheduler"] == {"train_timesteps": 200, "sample_steps": 10, "sampler": "ddim", "schedule": "official"}
    assert meta["steps_done"] == 2 and meta["spacing"] == list(SPACING)
    assert json.loads((ckpt / "autoencoder.json").read_text())["preset"] == "tiny"

    from synthesis.registry import make_generator

    from scipy import ndimage

    from synthesis.difftumor.generator import SIZE_STAGE

    generator = make_generator("difftumor", "liver", checkpoint=ckpt)
    assert set(generator.pipelines) == {"early", "nonearly"} and generator.model_spacing == tuple(SPACING)
    ct, label = make_case(9, shape=(40, 40, 40), tumor_radii=())
    organ = label == 1
    for seed in range(3):
        out = generator(ct[None], organ[None], SPACING, np.random.default_rng(seed))
        mask, params = out.tumor_mask[0], out.params[0]
        assert params["method"] == "difftumor" and params["stage"] == SIZE_STAGE[params["size_type"]]
        assert mask.any() and not (mask & ~organ).any()  # liver tumors are clipped to the organ
        changed = out.ct_hu[0] != ct
        assert changed[mask].mean() > 0.9  # the tumor voxels are generated...
        reach = int(np.ceil(4 * params["blur_sigma_mm"] / min(SPACING))) + 1
        near = ndimage.binary_dilation(mask, np.ones((3, 3, 3), bool), iterations=reach)
        assert not (changed & ~near).any()  # ...and nothing beyond the blend blur


def test_train_tiny_generators_skips_cached_models(dataset, tmp_path, monkeypatch):
    from benchmark import generators
    from synthesis.difftumor import config

    real_ae, real_diff = config.autoencoder_preset, config.diffusion_preset

    def short(fn):  # same presets, 2 steps, so the test checks the caching, not the training
        return lambda *a: tuple(config.with_steps(c, 2) if hasattr(c, "steps") else c for c in fn(*a))

    monkeypatch.setattr(config, "autoencoder_preset", short(real_ae))
    monkeypatch.setattr(config, "diffusion_preset", short(real_diff))
    out = generators.train_tiny_generators(dataset, tmp_path / "tiny", progress=False)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.pt")}
    assert set(stamps) == {"autoencoder.pt", "diffusion_liver_early.pt", "diffusion_liver_nonearly.pt"}
    generators.train_tiny_generators(dataset, tmp_path / "tiny", progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.pt")} == stamps

    # a shared autoencoder (one for all organs, as the official model) is copied in, not retrained
    shared = generators.tiny_autoencoder(dataset, tmp_path / "shared", progress=False)
    monkeypatch.setattr(generators, "train_autoencoder_on_dataset", _must_not_run)
    other = generators.train_tiny_generators(dataset, tmp_path / "other", progress=False, autoencoder=shared)
    assert (other / "autoencoder.pt").read_bytes() == shared.read_bytes()
    assert (other / "autoencoder.json").read_text() == shared.with_suffix(".json").read_text()
    assert {p.name for p in other.glob("diffusion_*.pt")} == {"diffusion_liver_early.pt",
                                                             "diffusion_liver_nonearly.pt"}


def _must_not_run(*args, **kwargs):
    raise AssertionError("the shared autoencoder must be reused, not retrained")


def test_cli_bad_autoencoder_is_a_clear_error(dataset, tmp_path, capsys):
    code = main(["generators", "train", "diffusion", str(dataset), "--autoencoder", str(tmp_path / "missing"),
                 "--early", "--out", str(tmp_path / "o"), "--steps", "1"])
    assert code == 2
    assert "checkpoint folder not found" in capsys.readouterr().err
    assert not (tmp_path / "o" / "diffusion_liver_early.pt").exists()
