"""Issue 15 item 6: the DiffTumor pipeline uses the official schedules (not MONAI's) by default.

The published values (golden README §5.9-10) are checked without the golden files; with them,
every one of the 12 schedule buffers is compared bit for bit (T=4 from the official early file,
T=200 and the DDIM parameters from ``schedule_T200_noearly.npz``).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from _official_golden import require_golden

from synthesis.difftumor.config import SchedulerConfig, scheduler_for_stage
from synthesis.difftumor.denoiser import build_scheduler
from synthesis.difftumor.schedules import OfficialDDIM, OfficialDDPM, schedule_buffers


def test_t4_cosine_without_monai_clip():
    buffers = schedule_buffers(4)
    np.testing.assert_allclose(buffers["betas"], [0.15299, 0.41696, 0.70786, 0.9999], atol=1e-5)
    np.testing.assert_allclose(buffers["alphas_cumprod"], [0.84701, 0.49384, 0.14427, 1.44e-5], rtol=2e-3)
    # MONAI clips betas at 0.999, which leaves alpha_bar[3] = 1.4e-4 (ten times too much signal)
    assert buffers["alphas_cumprod"][-1] < 2e-5


def test_default_samplers_are_the_official_ones():
    early = build_scheduler(scheduler_for_stage("early"))
    late = build_scheduler(scheduler_for_stage("nonearly"))
    assert isinstance(early, OfficialDDPM) and early.timesteps.tolist() == [3, 2, 1, 0]
    assert isinstance(late, OfficialDDIM)
    assert late.timesteps.tolist() == list(range(197, 0, -4))  # 197, 193, ..., 1
    assert late.ddim_alphas_prev[0] == late.alphas_cumprod[0]  # the last step lands on alpha_bar[0]
    monai = build_scheduler(SchedulerConfig(200, 50, "ddim", schedule="monai"))
    assert [int(t) for t in monai.timesteps] != late.timesteps.tolist()


def test_ddim_step_is_deterministic_and_unclipped():
    ddim = OfficialDDIM(200, 50)
    sample, eps = torch.full((1, 1, 2, 2, 2), 3.0), torch.full((1, 1, 2, 2, 2), -0.5)
    x_prev, x0 = ddim.step(eps, 197, sample)
    a_t, a_prev = ddim.alphas_cumprod[197], ddim.alphas_cumprod[193]
    expected_x0 = (3.0 + torch.sqrt(1 - a_t) * 0.5) / torch.sqrt(a_t)
    assert torch.allclose(x0, expected_x0.expand_as(x0)) and float(x0.max()) > 1  # no clamp to [-1, 1]
    assert torch.allclose(x_prev, (torch.sqrt(a_prev) * expected_x0 - torch.sqrt(1 - a_prev) * 0.5).expand_as(x0))


def test_add_noise_uses_the_schedule():
    ddpm = OfficialDDPM(4)
    x0, noise = torch.ones(2, 1, 2, 2, 2), torch.zeros(2, 1, 2, 2, 2)
    noisy = ddpm.add_noise(x0, noise, torch.tensor([0, 3]))
    assert noisy[0].flatten()[0] == pytest.approx(0.9203326, abs=1e-6)
    assert noisy[1].flatten()[0] == pytest.approx(0.0037983, abs=1e-6)


def test_buffers_equal_the_official_files():
    golden = require_golden()
    early = torch.load(golden / "denoiser_official_layout_early.pt", weights_only=True)["ema"]
    for name, value in schedule_buffers(4).items():
        assert torch.equal(value, early[name]), name
    reference = np.load(golden / "schedule_T200_noearly.npz")
    for name, value in schedule_buffers(200).items():
        np.testing.assert_array_equal(value.numpy(), reference[name], err_msg=name)
    ddim = OfficialDDIM(200, 50)
    np.testing.assert_array_equal(ddim.timesteps.flip(0).numpy(), reference["ddim_timesteps"])
    np.testing.assert_array_equal(ddim.ddim_alphas.numpy(), reference["ddim_alphas"])
    np.testing.assert_allclose(ddim.ddim_alphas_prev.numpy(), reference["ddim_alphas_prev"], rtol=0, atol=0)
    assert not reference["ddim_sigmas"].any()
