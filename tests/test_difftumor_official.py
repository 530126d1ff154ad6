"""Numerical equivalence of the ``official`` architecture with the published DiffTumor code.

The golden files (random weights saved in the official layouts + what the official code computed
from them, float32 CPU) are converted with our converter, then every stage is compared: encoder,
latent, codes, quantised latent, decoder, denoiser epsilon, the 4-step early sampling run step by
step and end to end, decode and blend, and one DDIM run. Tolerances follow the golden README
(1e-4 for single modules and single steps, 2e-3 end to end on the sampler states).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from _official_golden import golden, max_abs, report  # noqa: F401 (fixture)

from synthesis.difftumor.autoencoder import hu_to_unit, unit_to_hu
from synthesis.difftumor.checkpoint import load_autoencoder, load_diffusion
from synthesis.difftumor.denoiser import build_scheduler, condition, denoise_step_input
from synthesis.difftumor.official.autoencoder import FROM_DEPTH_FIRST, TO_DEPTH_FIRST
from synthesis.difftumor.official_import import import_official
from synthesis.difftumor.pipeline import blend
from synthesis.difftumor.schedules import OfficialDDIM


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def cases(golden):
    return torch.load(golden / "cases.pt", weights_only=True)


@pytest.fixture(scope="module")
def converted(golden, tmp_path_factory):
    out = import_official(golden / "autoencoder_official_layout.ckpt", "liver", tmp_path_factory.mktemp("official"),
                          early=golden / "denoiser_official_layout_early.pt")
    autoencoder, _ = load_autoencoder(out)
    denoiser, scheduler_config, meta = load_diffusion(out, "liver", "early")
    return autoencoder, denoiser, build_scheduler(scheduler_config), meta


def _close(name: str, ours: torch.Tensor, reference: torch.Tensor, atol: float = 1e-4) -> None:
    error = max_abs(ours, reference)
    report(name, error, reference)
    assert error <= atol, f"{name}: max abs error {error:.3g} > {atol}"


@torch.no_grad()
def test_encoder_latent_codes_match(converted, cases):
    autoencoder = converted[0]
    x = cases["ae_input"]
    _close("encoder features", autoencoder.encoder(x), cases["ae_encoder_features"])
    latent = autoencoder.encode_depth_first(x)
    _close("latent", latent, cases["ae_latent"])
    flat = latent.movedim(1, -1).reshape(-1, latent.shape[1])
    codes = autoencoder.codebook.nearest(flat).view(cases["ae_indices"].shape)
    assert torch.equal(codes, cases["ae_indices"])
    _close("quantised latent", autoencoder.codebook.quantize(latent), cases["ae_quantized"])


@torch.no_grad()
def test_decoder_matches(converted, cases):
    _close("reconstruction", converted[0].decode_depth_first(cases["ae_latent"]), cases["ae_recon"])


@torch.no_grad()
def test_our_layout_is_permuted_to_depth_first(converted, cases):
    """HU in our (X, Y, Z) layout through the public API = the official depth-first result."""
    autoencoder = converted[0]
    image = hu_to_unit(cases["ae_hu_xyz"], autoencoder.config.hu_window)
    _close("input scaling", image.permute(TO_DEPTH_FIRST), cases["ae_input"], atol=1e-6)
    _close("latent via X,Y,Z API", autoencoder.encode(image).permute(TO_DEPTH_FIRST), cases["ae_latent"])


@torch.no_grad()
def test_denoiser_epsilon_matches_with_ema_weights(converted, cases):
    denoiser = converted[1]
    eps = denoiser.forward_depth_first(torch.cat([cases["dn_x_t"], cases["dn_cond"]], 1), cases["dn_t"])
    _close("denoiser eps", eps, cases["dn_eps"])
    ours = denoiser(torch.cat([cases["dn_x_t"], cases["dn_cond"]], 1).permute(FROM_DEPTH_FIRST), cases["dn_t"])
    _close("denoiser eps via X,Y,Z API", ours.permute(TO_DEPTH_FIRST), cases["dn_eps"])


def _pipeline_inputs(autoencoder, cases):
    """(CT in HU, the same CT in [-1, 1] as the official STEP3 maps it, tumor mask) in our (B, X, Y, Z)
    layout. The [-1, 1] image is taken from the golden [0, 1] crop directly: going through HU and
    back would add float rounding that the first DDPM step multiplies by 263."""
    low, high = autoencoder.config.hu_window
    ct01 = cases["pipe_ct01"][:, 0]
    return ct01 * (high - low) + low, ct01 * 2 - 1, cases["pipe_tumor_mask"][:, 0].bool()


@torch.no_grad()
def test_conditioning_matches(converted, cases):
    autoencoder = converted[0]
    _, image, mask = _pipeline_inputs(autoencoder, cases)
    cond = condition(autoencoder, image[:, None], mask[:, None].float())
    _close("conditioning", cond.permute(TO_DEPTH_FIRST), cases["pipe_cond"])


@torch.no_grad()
def test_early_sampling_step_by_step(converted, cases):
    """Each of the 4 DDPM steps from the golden input state, noise and timestep."""
    _, denoiser, scheduler, _ = converted
    assert scheduler.timesteps.tolist() == [3, 2, 1, 0]
    x, cond = cases["pipe_x"], cases["pipe_cond"]
    for t in scheduler.timesteps.tolist():
        steps = torch.full((1,), t, dtype=torch.long)
        eps = denoiser.forward_depth_first(torch.cat([x[t + 1], cond], 1), steps)
        _close(f"eps at t={t}", eps, cases["pipe_eps"][t])
        x_next = scheduler.step(cases["pipe_eps"][t], t, x[t + 1], noise=cases["pipe_step_noise"][t])[0]
        _close(f"x after t={t}", x_next, x[t])


@torch.no_grad()
def test_early_sampling_end_to_end_decode_and_blend(converted, cases):
    """From the recorded x_T and noises through our pipeline's functions (X, Y, Z layout)."""
    autoencoder, denoiser, scheduler, _ = converted
    ct_hu, image, mask = _pipeline_inputs(autoencoder, cases)
    cond = condition(autoencoder, image[:, None], mask[:, None].float())
    latent = cases["pipe_x"][4].permute(FROM_DEPTH_FIRST)
    for t in scheduler.timesteps.tolist():
        eps = denoiser(denoise_step_input(latent, cond), torch.full((1,), t, dtype=torch.long))
        noise = cases["pipe_step_noise"][t].permute(FROM_DEPTH_FIRST)
        latent = scheduler.step(eps, t, latent, noise=noise)[0]
        _close(f"sampler state after t={t}", latent.permute(TO_DEPTH_FIRST), cases["pipe_x"][t], atol=2e-3)
    _close("denormalised latent", autoencoder.denormalize_latent(latent).permute(TO_DEPTH_FIRST),
           cases["pipe_latent_denorm"], atol=2e-3)
    decoded = autoencoder.decode(cases["pipe_latent_denorm"].permute(FROM_DEPTH_FIRST))
    _close("decoded crop", decoded.permute(TO_DEPTH_FIRST), cases["pipe_decoded"])
    window = autoencoder.config.hu_window
    decoded_hu = unit_to_hu(decoded.clamp(-1, 1), window)[0, 0].numpy()
    final = blend(ct_hu[0].numpy(), decoded_hu, mask[0].numpy(), float(cases["pipe_blur_sigma"]))
    final01 = torch.from_numpy((final - window[0]) / (window[1] - window[0]))
    _close("blended crop", final01, cases["pipe_final"][0, 0], atol=1e-4)


@torch.no_grad()
def test_ddim_run_matches(converted, cases):
    """50 DDIM steps (T=200, official timesteps) with the early weights, as the golden DDIM case."""
    denoiser, cond = converted[1], cases["pipe_cond"]
    scheduler = OfficialDDIM(200, 50)
    assert scheduler.timesteps.tolist() == cases["ddim_timesteps_called"].tolist()
    x = cases["ddim_x_T"]
    checkpoints = dict(zip(cases["ddim_x_after_steps"].tolist(), cases["ddim_x_after"]))
    for call, t in enumerate(scheduler.timesteps.tolist()):
        eps = denoiser.forward_depth_first(torch.cat([x, cond], 1), torch.full((1,), t, dtype=torch.long))
        if call == 0:
            _close("DDIM first eps", eps, cases["ddim_eps_first"])
        x = scheduler.step(eps, t, x)[0]
        if call in checkpoints:
            scale = float(checkpoints[call].abs().max())
            _close(f"DDIM x after call {call}", x, checkpoints[call], atol=1e-5 * scale + 1e-4)
    scale = float(cases["ddim_final"].abs().max())
    _close("DDIM final", x, cases["ddim_final"], atol=1e-5 * scale)


def test_converted_files_load_with_weights_only(converted, golden, tmp_path):
    meta = converted[3]
    assert meta["arch"] == "official" and meta["source"]["weights"] == "ema"
    assert meta["vqgan_copy_max_abs_diff"] == 0.0
    assert np.isclose(meta["scheduler"]["train_timesteps"], 4)
