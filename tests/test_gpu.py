"""CUDA paths (marked gpu, skipped by default): training with AMP + on-the-fly synthesis, sliding-
window inference, and a DiffTumor pipeline call on the device.

`pytest -m gpu` on a CUDA machine. TUMORBENCH_TEST_DEVICE=cpu runs the same checks on CPU (that is
how they were validated on this project's CPU-only machine).
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from models_testdata import make_items

DEVICE = os.environ.get("TUMORBENCH_TEST_DEVICE", "cuda")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(),
                                                  reason="needs a CUDA device")]


def test_train_with_amp_and_hu_synthesis_then_predict_on_device(tmp_path):
    from models.config import TrainConfig
    from models.inference import load_model, predict_volume
    from models.trainer import train
    from synthesis.registry import make_generator

    items = make_items(tmp_path / "cases", n_labeled=3, n_healthy=2, seed=1, shape=(32, 30, 28))
    config = TrainConfig(backbone="unet", size="tiny", crop_size=(24, 24, 24), spacing=(2.0, 2.0, 2.0),
                         epochs=2, iters_per_epoch=3, val_every=1, warmup_epochs=1, seed=3, amp=True)
    result = train(config, items[:2] + items[3:], items[2:3], tmp_path / "run", device=DEVICE,
                   generator=make_generator("hu", "liver"), progress=False)
    assert len(result.history) == 2 and all(np.isfinite(h["train_loss"]) for h in result.history)
    model, loaded = load_model(tmp_path / "run" / "best.pt", device=DEVICE)
    volume = np.full((32, 30, 28), 60.0, dtype=np.float32)
    labels = predict_volume(model, volume, loaded, torch.device(DEVICE), 0.5)
    assert labels.shape == volume.shape and set(np.unique(labels)) <= {0, 1, 2}


def test_difftumor_pipeline_runs_batched_on_device():
    from synthesis.difftumor.autoencoder import VQAutoencoder
    from synthesis.difftumor.config import autoencoder_preset, diffusion_preset
    from synthesis.difftumor.denoiser import build_denoiser, build_scheduler
    from synthesis.difftumor.pipeline import DiffTumorPipeline

    model_config, _ = autoencoder_preset("tiny")
    denoiser_config, scheduler_config, _ = diffusion_preset("tiny", "early")
    device = torch.device(DEVICE)
    pipeline = DiffTumorPipeline(VQAutoencoder(model_config).to(device).eval(),
                                 build_denoiser(denoiser_config).to(device).eval(), build_scheduler(scheduler_config))
    ct = np.full((4, 32, 32, 32), 60.0, dtype=np.float32)
    organ = np.ones(ct.shape, dtype=bool)
    tumor = np.zeros(ct.shape, dtype=bool)
    tumor[:, 12:20, 12:20, 12:20] = True
    out = pipeline(ct, organ, tumor, torch.Generator(device=device).manual_seed(0), blur_sigmas=[1.0] * 4)
    assert out.shape == ct.shape and np.isfinite(out).all()
    assert np.array_equal(out[:, :4], ct[:, :4])  # far from the blurred mask: unchanged
