"""`tumorbench generators import-official`, the converted folder in `synthesize`, and `--arch official`.

Uses the golden random-weight files in the official layouts (see ``_official_golden``); the
numbers they produce are checked in ``test_difftumor_official.py``.
"""
from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch

from _difftumor_fixtures import make_case, write_dataset
from _official_golden import golden  # noqa: F401 (fixture)

from benchmark.cli import main
from synthesis.difftumor.official_import import STAGE_TIMESTEPS
from synthesis.difftumor.official.denoiser import OfficialUnet3D
from synthesis.difftumor.schedules import schedule_buffers


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def converted(golden, tmp_path_factory):
    out = tmp_path_factory.mktemp("conv") / "official"
    assert main(["generators", "import-official", "--autoencoder", str(golden / "autoencoder_official_layout.ckpt"),
                 "--early", str(golden / "denoiser_official_layout_early.pt"), "--organ", "liver",
                 "--out", str(out)]) == 0
    return out


def _import(golden, out, **files):
    args = ["generators", "import-official", "--autoencoder",
            str(files.get("autoencoder", golden / "autoencoder_official_layout.ckpt")), "--organ",
            files.get("organ", "liver"), "--out", str(out)]
    for flag in ("early", "non_early"):
        if flag in files:
            args += [f"--{flag.replace('_', '-')}", str(files[flag])]
    return main(args)


def test_converted_folder_is_plain_weights(converted):
    ae = torch.load(converted / "autoencoder.pt", weights_only=True)
    dn = torch.load(converted / "diffusion_liver_early.pt", weights_only=True)
    assert len(dn) == 300 and all(not k.startswith(("denoise_fn.", "vqgan.")) for k in dn)
    assert not any(k.startswith(("image_discriminator", "video_discriminator", "perceptual")) for k in ae)
    assert {"codebook.embeddings", "codebook.cluster_size", "codebook.embed_sum"} <= set(ae)
    meta = json.loads((converted / "diffusion_liver_early.json").read_text())
    assert meta["arch"] == "official" and meta["scheduler"]["train_timesteps"] == 4
    assert meta["source"]["weights"] == "ema"


def _fake_diffusion_file(path, timesteps: int, break_key: str | None = None):
    state = {k: v for k, v in schedule_buffers(timesteps).items()}
    state.update({f"denoise_fn.{k}": v for k, v in OfficialUnet3D().state_dict().items()})
    if break_key is not None:
        state[break_key] = torch.zeros(3)
    torch.save({"step": 1, "model": state, "ema": state, "scaler": {}}, path)
    return path


def _bad_inputs(golden, tmp_path):
    truncated = tmp_path / "AutoencoderModel.ckpt"
    truncated.write_bytes((golden / "autoencoder_official_layout.ckpt").read_bytes()[:200_000])
    other_organ = tmp_path / "kidney_early.pt"
    other_organ.symlink_to(golden / "denoiser_official_layout_early.pt")
    return {
        "wrong file as autoencoder": ({"autoencoder": golden / "denoiser_official_layout_early.pt",
                                       "early": golden / "denoiser_official_layout_early.pt"}, "state_dict"),
        "truncated autoencoder": ({"autoencoder": truncated, "early": other_organ}, "cannot read"),
        "another organ's model": ({"early": other_organ}, "kidney early model"),
        "early file as non-early": ({"non_early": golden / "denoiser_official_layout_early.pt"}, "T=200"),
        "wrong shape": ({"early": _fake_diffusion_file(tmp_path / "a.pt", 4, "denoise_fn.init_conv.bias")},
                        "'denoise_fn.init_conv.bias' has shape [3], expected [24]"),
        "no diffusion file": ({}, "--early and/or --non-early"),
    }


@pytest.mark.parametrize("case", ["wrong file as autoencoder", "truncated autoencoder", "another organ's model",
                                  "early file as non-early", "wrong shape", "no diffusion file"])
def test_bad_input_is_one_clear_error_and_writes_nothing(golden, tmp_path, capsys, case):
    files, expected = _bad_inputs(golden, tmp_path)[case]
    out = tmp_path / "out"
    assert _import(golden, out, **files) == 2
    err = capsys.readouterr().err
    assert err.startswith("tumorbench: error: ") and expected in err, err
    assert not out.exists()


def test_missing_denoiser_key_is_named(golden, tmp_path, capsys):
    path = _fake_diffusion_file(tmp_path / "b.pt", STAGE_TIMESTEPS["early"])
    state = torch.load(path, weights_only=True)
    del state["ema"]["denoise_fn.mid_block1.block1.norm.weight"]
    torch.save(state, path)
    assert _import(golden, tmp_path / "out", early=path) == 2
    assert "'denoise_fn.mid_block1.block1.norm.weight' missing" in capsys.readouterr().err


def _small_window_copy(converted, target):
    """The converted folder with a 32^3 model window instead of 96^3 (same weights, 27x less CPU
    time for the test; the architecture takes any window whose sides are multiples of 32)."""
    target.mkdir()
    for path in converted.iterdir():
        if path.suffix == ".pt":
            (target / path.name).symlink_to(path)
        elif path.suffix == ".json":
            meta = json.loads(path.read_text())
            meta["train"]["crop_size"] = [32, 32, 32]
            (target / path.name).write_text(json.dumps(meta))
    return target


@pytest.mark.parametrize("window", [pytest.param(96, marks=pytest.mark.slow), 32])
def test_synthesize_with_the_converted_folder(converted, tmp_path, window):
    """`synthesize --method difftumor --checkpoint DIR` on a 1 mm CT smaller than the 96^3 window."""
    checkpoint = converted if window == 96 else _small_window_copy(converted, tmp_path / "ckpt32")
    shape = (64, 64, 40)
    grid = np.ogrid[:shape[0], :shape[1], :shape[2]]
    organ = sum(((g - n / 2) / r) ** 2 for g, n, r in zip(grid, shape, (26, 26, 16))) <= 1
    ct = np.where(organ, 100.0, -80.0).astype(np.float32)
    affine = np.eye(4)
    nib.save(nib.Nifti1Image(ct, affine), tmp_path / "ct.nii.gz")
    nib.save(nib.Nifti1Image(organ.astype(np.uint8), affine), tmp_path / "organ.nii.gz")
    out = tmp_path / "out"
    assert main(["synthesize", str(tmp_path / "ct.nii.gz"), str(tmp_path / "organ.nii.gz"), "--organ", "liver",
                 "--method", "difftumor", "--checkpoint", str(checkpoint), "--size", "small", "--seed", "1",
                 "--out", str(out)]) == 0
    tumor = np.asarray(nib.load(out / "tumor.nii.gz").dataobj).astype(bool)
    result = np.asarray(nib.load(out / "ct.nii.gz").dataobj)
    assert tumor.sum() > 100 and not (tumor & ~organ).any()
    changed = np.abs(result - ct) > 1e-3
    assert changed[tumor].mean() > 0.9  # random weights: the crop is rewritten inside the tumor
    # blended through the blurred mask only: voxels far (> 4 sigma_max = 16 voxels) from the tumor keep their HU
    far = np.ones(shape, bool)
    idx = np.argwhere(tumor)
    lo, hi = np.maximum(idx.min(0) - 17, 0), idx.max(0) + 18
    far[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = False
    assert not changed[far].any()


def test_train_official_arch_from_the_published_weights(converted, tmp_path, capsys):
    """`--arch official --init DIR` fine-tunes the converted weights (2 steps each) into a usable folder."""
    data = write_dataset(tmp_path / "liver", shape=(40, 40, 40))
    out = tmp_path / "tuned"
    assert main(["generators", "train", "autoencoder", str(data), "--arch", "official", "--init", str(converted),
                 "--steps", "2", "--out", str(out)]) == 0
    assert main(["generators", "train", "diffusion", str(data), "--autoencoder", str(out), "--arch", "official",
                 "--init", str(converted), "--early", "--steps", "2", "--out", str(out)]) == 0
    start = torch.load(converted / "diffusion_liver_early.pt", weights_only=True)
    tuned = torch.load(out / "diffusion_liver_early.pt", weights_only=True)
    assert set(start) == set(tuned)
    drift = max(float((start[k] - tuned[k]).abs().max()) for k in start)
    assert 0 < drift < 0.05  # moved by two small steps, not re-initialised
    ae_start = torch.load(converted / "autoencoder.pt", weights_only=True)["encoder.conv_first.conv.weight"]
    ae_tuned = torch.load(out / "autoencoder.pt", weights_only=True)["encoder.conv_first.conv.weight"]
    assert float((ae_start - ae_tuned).abs().max()) < 0.05
    meta = json.loads((out / "autoencoder.json").read_text())
    assert meta["arch"] == "official" and "init_sha256" in meta
    capsys.readouterr()
    assert main(["generators", "train", "autoencoder", str(data), "--init", str(converted), "--steps", "1",
                 "--out", str(tmp_path / "mixed")]) == 2
    assert "another architecture" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "mixed", ignore_errors=True)


def test_recorded_architecture_fields_are_checked(golden, converted):
    from synthesis.difftumor.official_import import check_hyperparameters
    from synthesis.difftumor.official.unpickle import load_relaxed
    from synthesis.errors import SynthesisInputError

    lightning = load_relaxed(golden / "autoencoder_official_layout.ckpt")
    found = check_hyperparameters(lightning, "ckpt")
    assert found["num_groups"] == 32 and found["padding_type"] == "replicate" and found["downsample"] == [4, 4, 4]
    source = json.loads((converted / "autoencoder.json").read_text())["source"]
    assert source["hyper_parameters_checked"] == found
    changed = {"hyper_parameters": {"cfg": {"model": dict(found, num_groups=16)}}}
    with pytest.raises(SynthesisInputError, match="cfg.model.num_groups is 16"):
        check_hyperparameters(changed, "ckpt")
    assert check_hyperparameters({"state_dict": {}}, "ckpt") is None


def test_non_early_file_converts_to_the_ddim_model(golden, tmp_path):
    from synthesis.difftumor.checkpoint import load_diffusion
    from synthesis.difftumor.denoiser import build_scheduler
    from synthesis.difftumor.schedules import OfficialDDIM

    noearly = _fake_diffusion_file(tmp_path / "liver_noearly.pt", STAGE_TIMESTEPS["nonearly"])
    out = tmp_path / "out"
    assert _import(golden, out, early=golden / "denoiser_official_layout_early.pt", non_early=noearly) == 0
    denoiser, scheduler_config, meta = load_diffusion(out, "liver", "nonearly")
    scheduler = build_scheduler(scheduler_config)
    assert isinstance(denoiser, OfficialUnet3D) and isinstance(scheduler, OfficialDDIM)
    assert scheduler.timesteps[0] == 197 and scheduler.timesteps[-1] == 1 and meta["source"]["step"] == 1
    assert meta["vqgan_copy_max_abs_diff"] is None  # this file carries no autoencoder copy


def test_converted_folder_as_a_grid_checkpoint(converted, tmp_path):
    """A grid's `[generators.difftumor] checkpoints = {liver = DIR}` builds the trainer's generator from it."""
    from benchmark.cell import cells_from_grid
    from benchmark.grid import parse_grid
    from synthesis.registry import make_generator

    checkpoint = _small_window_copy(converted, tmp_path / "ckpt32")
    data = write_dataset(tmp_path / "liver", n=2, shape=(40, 40, 40), spacing=(1.0, 1.0, 1.0))
    grid = parse_grid(f'name = "g"\norgans = ["liver"]\nregimes = ["difftumor"]\n[datasets]\nliver = "{data}"\n'
                      f'[generators.difftumor]\ncheckpoints = {{liver = "{checkpoint}"}}\n'
                      'size_probs = {tiny = 0.0, small = 1.0, medium = 0.0, large = 0.0}\n')
    (cell,) = cells_from_grid(grid, {"liver": "fp"})
    config = dict(cell.generator_config())
    path = config.pop("checkpoint")
    assert path == str(checkpoint.resolve())
    generator = make_generator(config.pop("name"), "liver", checkpoint=path, **config)
    ct, label = make_case(5, shape=(40, 40, 40), tumor_radii=())
    out = generator(ct[None], (label == 1)[None], (1.0, 1.0, 1.0), np.random.default_rng(0))
    assert out.tumor_mask.any() and out.params[0]["stage"] == "early"
    assert np.abs(out.ct_hu - ct[None])[out.tumor_mask].mean() > 1.0
