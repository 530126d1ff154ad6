"""`tumorbench perf sampling`: DiffTumor sampling throughput (crops/s) with random weights.

For each preset (tiny: 32^3 crops, paper: 96^3 crops with the official channel sizes, official:
96^3 crops with the published architectures, i.e. what ``import-official`` weights run), stage
(early: 4-step DDPM, non-early: 50-step DDIM) and batch size, time one pipeline call (encode the
masked crop, denoise, decode, blend). The baseline in the same run is batch size 1: the batched
row's ``speedup`` is its crops/s over the batch-1 crops/s.
"""
from __future__ import annotations

import time


def add_arguments(parser) -> None:
    parser.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    parser.add_argument("--presets", nargs="+", default=["tiny", "paper"], choices=["tiny", "paper", "official"],
                        help="official = the published DiffTumor architectures at 96^3")
    parser.add_argument("--stages", nargs="+", default=["early", "nonearly"], choices=["early", "nonearly"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per row (best is kept)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.epilog = "example: tumorbench perf sampling --presets paper official --stages early --batch-sizes 1 8"


def build_pipeline(preset: str, stage: str, device: str, seed: int = 0):
    """Random-weight pipeline with the preset's sizes (codebook filled so latents normalise)."""
    import torch

    from synthesis.difftumor.checkpoint import build_autoencoder
    from synthesis.difftumor.config import (autoencoder_preset, diffusion_preset, official_autoencoder_config,
                                            official_diffusion_config)
    from synthesis.difftumor.denoiser import build_denoiser, build_scheduler
    from synthesis.difftumor.pipeline import DiffTumorPipeline

    if preset == "official":
        model_config, _ = official_autoencoder_config("paper")
        denoiser_config, scheduler_config, train_config = official_diffusion_config("paper", stage)
    else:
        model_config, _ = autoencoder_preset(preset)
        denoiser_config, scheduler_config, train_config = diffusion_preset(preset, stage)
    generator = torch.Generator().manual_seed(seed)
    autoencoder = build_autoencoder(model_config)
    autoencoder.codebook.embeddings.copy_(torch.randn(autoencoder.codebook.embeddings.shape, generator=generator))
    pipeline = DiffTumorPipeline(autoencoder.to(device), build_denoiser(denoiser_config).to(device),
                                 build_scheduler(scheduler_config))
    return pipeline, tuple(train_config.crop_size)


def time_call(pipeline, crop_size, batch: int, device: str, repeats: int) -> float:
    """Best wall time (s) of one pipeline call on ``batch`` crops with a centred ball mask."""
    import numpy as np
    import torch

    rng = np.random.default_rng(0)
    ct = rng.normal(100.0, 20.0, (batch, *crop_size)).astype(np.float32)
    grid = np.indices(crop_size).astype(np.float32) - np.array(crop_size, np.float32)[:, None, None, None] / 2
    ball = (grid ** 2).sum(0) <= (min(crop_size) / 8) ** 2
    masks = np.broadcast_to(ball, ct.shape)
    organ = np.ones(ct.shape, dtype=bool)
    best = float("inf")
    for repeat in range(repeats + 1):  # the first call warms up (allocations, cuDNN autotune)
        generator = torch.Generator(device=device).manual_seed(repeat)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        pipeline(ct, organ, masks, generator)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if repeat:
            best = min(best, time.perf_counter() - start)
    return best


def run(args) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"DiffTumor sampling, device={args.device}, torch threads={torch.get_num_threads()}, random weights")
    print(f"{'preset':8} {'stage':9} {'crop':>5} {'steps':>5} {'batch':>5} {'s/call':>8} {'crops/s':>8} {'speedup':>8}")
    for preset in args.presets:
        for stage in args.stages:
            pipeline, crop = build_pipeline(preset, stage, args.device)
            baseline = None
            for batch in args.batch_sizes:
                seconds = time_call(pipeline, crop, batch, args.device, args.repeats)
                rate = batch / seconds
                baseline = baseline or rate
                steps = len(pipeline.scheduler.timesteps)
                print(f"{preset:8} {stage:9} {crop[0]:>4}^ {steps:>5} {batch:>5} {seconds:>8.2f} {rate:>8.2f} "
                      f"{rate / baseline:>7.2f}x", flush=True)
    return 0
