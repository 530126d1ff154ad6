"""DiffTumor: autoencoder training, diffusion inpainting, generator protocol, checkpoints, resume.

Models and crops are tiny (16^3 crops of 2 mm synthetic cases) so the whole file runs in about a
minute on 2 cores; the tiny/paper presets are exercised by the CLI and perf benchmark instead.
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from _difftumor_fixtures import ORGAN_HU, SPACING, make_case, make_items
from _interrupt import Killed, kill_at

from synthesis.difftumor import config as cfg
from synthesis.difftumor.checkpoint import load_autoencoder
from synthesis.difftumor.generator import DiffTumorGenerator
from synthesis.difftumor.train_autoencoder import train_autoencoder
from synthesis.difftumor.train_diffusion import train_diffusion
from synthesis.errors import SynthesisInputError
from synthesis.protocol import TumorGenerator

AE_MODEL = cfg.AutoencoderConfig(channels=(8, 16, 16), num_codes=32, decoder_res_blocks=1, norm_groups=4)
AE_TRAIN = cfg.AutoencoderTrainConfig(crop_size=(16, 16, 16), batch_size=2, lr=5e-4, steps=160, disc_start=120,
                                      disc_channels=4, disc_layers=2, checkpoint_every=80, tumor_crop_prob=0.5)
DENOISER = cfg.DenoiserConfig(channels=(16, 32), attention_levels=(False, False), num_res_blocks=1,
                              norm_groups=8, num_head_channels=16)
DIFF_TRAIN = cfg.DiffusionTrainConfig(crop_size=(16, 16, 16), batch_size=4, lr=3e-3, steps=160, ema_decay=0.9,
                                      ema_every=1, ema_start=10, tumor_crop_prob=1.0, checkpoint_every=60)
ORGAN = "liver"


def _items():
    return make_items(3, seed=0, shape=(32, 32, 32), tumor_radii=(3, 3, 4))


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Autoencoder + early model trained once for the module; returns (ckpt dir, AE loss history)."""
    out = tmp_path_factory.mktemp("difftumor_ckpt")
    history: list[tuple[int, float]] = []
    train_autoencoder(_items(), out, AE_MODEL, AE_TRAIN, progress=False,
                      log_metrics=lambda metrics, step: history.append((step, metrics["ae_l1"])),
                      meta={"spacing": list(SPACING)})
    train_diffusion(_items(), out, out, ORGAN, "early", DENOISER, cfg.scheduler_for_stage("early"), DIFF_TRAIN,
                    progress=False)
    return out, history


def _healthy_batch(n: int = 2):
    ct, label = make_case(7, shape=(32, 32, 32), tumor_radii=())
    return np.stack([ct] * n), np.stack([label == 1] * n)


def _generator(ckpt, **kwargs) -> DiffTumorGenerator:
    probs = {"tiny": 0.0, "small": 1.0, "medium": 0.0, "large": 0.0}
    return DiffTumorGenerator(ORGAN, checkpoint=ckpt, size_probs=probs, **kwargs)


def test_autoencoder_reconstruction_error_falls(trained):
    _, history = trained
    first = np.mean([l1 for step, l1 in history if step < 3])
    last = np.mean([l1 for step, l1 in history if step >= AE_TRAIN.steps - 6])
    assert last < 0.5 * first, f"L1 {first:.3f} -> {last:.3f}"


def test_generator_satisfies_protocol(trained):
    generator = _generator(trained[0])
    assert isinstance(generator, TumorGenerator)
    assert generator.name == "difftumor" and generator.organ == ORGAN


def test_changes_only_near_mask_and_darker_inside(trained):
    ct, organ = _healthy_batch(4)
    out = _generator(trained[0], blur_sigma_mm=(0.0, 1.0))(ct, organ, SPACING, np.random.default_rng(3))
    assert out.ct_hu.shape == ct.shape and out.tumor_mask.shape == ct.shape
    from scipy import ndimage

    for b in range(len(ct)):
        mask = out.tumor_mask[b]
        assert mask.any() and not (mask & ~organ[b]).any()
        reach = int(np.ceil(4 * out.params[b]["blur_sigma_mm"] / min(SPACING))) + 1
        near = ndimage.binary_dilation(mask, structure=np.ones((3, 3, 3), bool), iterations=reach)
        np.testing.assert_array_equal(out.ct_hu[b][~near], ct[b][~near])
    # real tumors of the training cases are darker than the organ (0 vs 120 HU, noise sd 8 HU).
    # A denoiser that only copied the masked hole would give what the autoencoder makes of the
    # masked crop (~90 HU here): the trained one must paint a clearly darker tumor.
    generated = out.ct_hu[out.tumor_mask].mean()
    hole_copy = _decoded_masked_crop(_generator(trained[0]).pipelines["early"], ct, out.tumor_mask)
    assert generated < hole_copy[out.tumor_mask].mean() - 25, (generated, hole_copy[out.tumor_mask].mean())
    assert json.dumps(out.params)  # replayable, JSON-serialisable


def _decoded_masked_crop(pipeline, ct, masks):
    """The crops the autoencoder decodes from the masked crops' latents (no diffusion), in HU."""
    from synthesis.difftumor.autoencoder import hu_to_unit, unit_to_hu

    with torch.no_grad():
        image = torch.from_numpy(hu_to_unit(ct, pipeline.window)[:, None])
        hole = torch.from_numpy(masks[:, None].astype(np.float32))
        decoded = pipeline.autoencoder.decode(pipeline.autoencoder.encode(image * (1 - hole)), quantize=True)
        return unit_to_hu(decoded.clamp(-1, 1), pipeline.window)[:, 0].numpy()


def test_each_tumor_replays_bit_identically_whatever_its_batch(trained):
    """Every tumor has its own seed and noise: the same rng gives the same tumors with batches of
    3 or 1, and ``replay`` redraws each one alone from its params (CPU)."""
    ct, organ = _healthy_batch(3)
    batched = _generator(trained[0], max_batch=3)(ct, organ, SPACING, np.random.default_rng(21))
    single = _generator(trained[0], max_batch=1)(ct, organ, SPACING, np.random.default_rng(21))
    np.testing.assert_array_equal(batched.ct_hu, single.ct_hu)
    assert len({p["seed"] for p in batched.params}) == 3
    generator = _generator(trained[0])
    for b, params in enumerate(batched.params):
        assert params["method"] == "difftumor" and params["blur_sigma_mm"] >= 0
        tumor_ct, mask = generator.replay(ct[b], organ[b], json.loads(json.dumps(params)))
        np.testing.assert_array_equal(tumor_ct, batched.ct_hu[b])
        np.testing.assert_array_equal(mask, batched.tumor_mask[b])


def test_ct_at_another_spacing_is_resampled_to_the_checkpoints(trained):
    """A 1.6 x 1.6 x 3 mm crop (models trained at 2 mm): the window is the model crop in mm,
    resampled there and back; no spacing warning, the tumor is generated and the CT is unchanged
    away from it."""
    import warnings

    from scipy import ndimage

    spacing = (1.6, 1.6, 3.0)
    shape = tuple(int(round(32 * 2.0 / s)) for s in spacing)  # the 2 mm case's extent
    ct_2mm, label_2mm = make_case(7, shape=(32, 32, 32), tumor_radii=())
    zoom = [n / 32 for n in shape]
    ct = ndimage.zoom(ct_2mm, zoom, order=1)[None]
    organ = (ndimage.zoom(label_2mm.astype(np.float32), zoom, order=1) >= 0.5)[None]
    generator = _generator(trained[0], blur_sigma_mm=(0.0, 1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        outs = [generator(ct, organ, spacing, np.random.default_rng(seed)) for seed in range(3)]
    drops = [float((ct[0] - o.ct_hu[0])[o.tumor_mask[0]].mean()) for o in outs]
    assert np.mean(drops) > 15, drops  # a dark tumor, as at 2 mm
    out, mask = outs[0], outs[0].tumor_mask[0]
    assert mask.any() and not (mask & ~organ[0]).any()
    window = np.zeros(shape, bool)
    start, size = out.params[0]["window_start"], (20, 20, 11)  # 16 voxels at 2 mm, in 1.6/1.6/3 mm voxels
    window[tuple(slice(max(a, 0), a + n) for a, n in zip(start, size))] = True
    np.testing.assert_array_equal(out.ct_hu[0][~window], ct[0][~window])
    again, _ = _generator(trained[0]).replay(ct[0], organ[0], out.params[0])
    np.testing.assert_array_equal(again, out.ct_hu[0])


def test_diffusion_checkpoint_finds_its_autoencoder_elsewhere(trained, tmp_path):
    """generators train diffusion --autoencoder AE --out DM records AE (path, sha256): DM alone loads, and a
    moved or changed autoencoder is a clear error."""
    import shutil

    ae = tmp_path / "ae"
    ae.mkdir()
    for name in ("autoencoder.pt", "autoencoder.json"):
        shutil.copy(trained[0] / name, ae / name)
    train_diffusion(_items(), ae, tmp_path / "dm", ORGAN, "early", DENOISER, cfg.scheduler_for_stage("early"),
                    dataclasses.replace(DIFF_TRAIN, steps=2, checkpoint_every=2), progress=False)
    assert not (tmp_path / "dm" / "autoencoder.pt").exists()
    ct, organ = _healthy_batch(1)
    assert _generator(tmp_path / "dm")(ct, organ, SPACING, np.random.default_rng(0)).tumor_mask.any()
    ae.rename(tmp_path / "moved")
    with pytest.raises(SynthesisInputError, match="is missing"):
        _generator(tmp_path / "dm")
    (tmp_path / "moved").rename(ae)
    (ae / "autoencoder.pt").write_bytes((ae / "autoencoder.pt").read_bytes() + b"changed")
    with pytest.raises(SynthesisInputError, match="not the autoencoder the diffusion models"):
        _generator(tmp_path / "dm")


def test_same_seed_same_output_and_checkpoint_roundtrip(trained):
    ct, organ = _healthy_batch()
    first = _generator(trained[0])(ct, organ, SPACING, np.random.default_rng(11))
    again = _generator(trained[0])(ct, organ, SPACING, np.random.default_rng(11))  # reloads from disk
    np.testing.assert_array_equal(first.ct_hu, again.ct_hu)
    np.testing.assert_array_equal(first.tumor_mask, again.tumor_mask)
    other = _generator(trained[0])(ct, organ, SPACING, np.random.default_rng(12))
    assert not np.array_equal(first.ct_hu, other.ct_hu)


def test_full_volume_larger_than_model_crop(trained):
    ct, label = make_case(5, shape=(40, 36, 44), tumor_radii=())
    out = _generator(trained[0])(ct[None], (label == 1)[None], SPACING, np.random.default_rng(0))
    assert out.ct_hu.shape == (1, 40, 36, 44) and out.tumor_mask[0].any()
    inside = np.zeros(ct.shape, bool)  # ellipsoids farther apart than one crop get a window each
    for start in out.params[0]["window_starts"]:
        inside[tuple(slice(s, s + 16) for s in start)] = True
    assert out.params[0]["window_start"] == out.params[0]["window_starts"][0]
    np.testing.assert_array_equal(out.ct_hu[0][~inside], ct[~inside])


def test_missing_or_bad_checkpoint_is_a_clear_error(tmp_path, trained):
    with pytest.raises(SynthesisInputError, match="checkpoint folder not found"):
        _generator(tmp_path / "nope")
    with pytest.raises(SynthesisInputError, match="early model for liver not found"):
        _generator(tmp_path)
    with pytest.raises(SynthesisInputError, match="nonearly model for liver not found"):
        DiffTumorGenerator(ORGAN, checkpoint=trained[0])  # default size probs need the non-early model
    with pytest.raises(SynthesisInputError, match="autoencoder config not found"):
        load_autoencoder(tmp_path)
    (tmp_path / "autoencoder.json").write_bytes((trained[0] / "autoencoder.json").read_bytes())
    (tmp_path / "autoencoder.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(SynthesisInputError, match="cannot read DiffTumor autoencoder weights"):
        load_autoencoder(tmp_path)
    with pytest.raises(SynthesisInputError, match="trained weights"):
        DiffTumorGenerator(ORGAN)


def test_exported_autoencoder_loads_to_the_same_model(tmp_path):
    """export_model + load_autoencoder restore every weight and codebook buffer of an in-memory
    model (a randomly initialised one with a perturbed codebook): same state, same outputs."""
    from synthesis.difftumor.autoencoder import VQAutoencoder
    from synthesis.difftumor.checkpoint import export_model

    torch.manual_seed(0)
    model = VQAutoencoder(AE_MODEL).eval()
    for buffer in model.buffers():
        if buffer.is_floating_point():
            buffer.copy_(torch.randn_like(buffer))
    export_model(tmp_path, "autoencoder", model.state_dict(), {"model": cfg.to_dict(AE_MODEL)})
    loaded, _ = load_autoencoder(tmp_path)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0, msg=key)
    image = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (1, 1, 16, 16, 16)).astype(np.float32))
    with torch.no_grad():
        torch.testing.assert_close(loaded.decode(loaded.encode(image)), model.decode(model.encode(image)),
                                   rtol=0, atol=0)


def test_training_resumes_after_interruption(tmp_path):
    train = dataclasses.replace(AE_TRAIN, steps=6, disc_start=3, checkpoint_every=2)
    items = _items()
    train_autoencoder(items, tmp_path / "straight", AE_MODEL, train, progress=False)
    with pytest.raises(Killed):
        train_autoencoder(items, tmp_path / "resumed", AE_MODEL, train, progress=False, log_metrics=kill_at(4))
    assert not (tmp_path / "resumed" / "autoencoder.pt").exists()
    state = torch.load(tmp_path / "resumed" / "train_state" / "autoencoder.pt", weights_only=True)
    assert state["step"] == 4
    train_autoencoder(items, tmp_path / "resumed", AE_MODEL, train, progress=False)
    straight = torch.load(tmp_path / "straight" / "autoencoder.pt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed" / "autoencoder.pt", weights_only=True)
    assert straight.keys() == resumed.keys()
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=0, msg=key)


def test_synthesize_cli_replays_difftumor_tumors(trained, tmp_path):
    """`tumorbench synthesize --method difftumor` then `--replay params.json`: bit-identical files."""
    import nibabel as nib

    from benchmark.cli import main

    ct, label = make_case(3, shape=(36, 32, 34), tumor_radii=())
    affine = np.diag([*SPACING, 1.0])
    nib.save(nib.Nifti1Image(ct, affine), tmp_path / "ct.nii.gz")
    nib.save(nib.Nifti1Image((label == 1).astype(np.uint8), affine), tmp_path / "organ.nii.gz")
    inputs = [str(tmp_path / "ct.nii.gz"), str(tmp_path / "organ.nii.gz")]
    assert main(["synthesize", *inputs, "--organ", ORGAN, "--method", "difftumor", "--checkpoint", str(trained[0]),
                 "--size", "small", "--count", "2", "--seed", "4", "--out", str(tmp_path / "a")]) == 0
    params = json.loads((tmp_path / "a" / "params.json").read_text())
    assert [t["method"] for t in params["tumors"]] == ["difftumor", "difftumor"]
    assert main(["synthesize", *inputs, "--replay", str(tmp_path / "a" / "params.json"),
                 "--out", str(tmp_path / "b")]) == 0
    for name in ("ct.nii.gz", "tumor.nii.gz"):
        first, again = (np.asarray(nib.load(tmp_path / d / name).dataobj) for d in ("a", "b"))
        np.testing.assert_array_equal(again, first)
    assert np.asarray(nib.load(tmp_path / "a" / "tumor.nii.gz").dataobj).any()
