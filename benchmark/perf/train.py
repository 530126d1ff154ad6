"""`tumorbench perf train`: training iterations/s with and without on-the-fly synthesis.

Both variants run in the same process on the same in-memory phantom volumes (half with a real
tumor, half healthy), same backbone and batch: the baseline has no generator (healthy crops
stay negatives), the other passes every healthy crop through the generator with
``synth_prob``. Cropping + synthesis is timed separately from the optimisation step.
"""
from __future__ import annotations

import argparse
import time

EXAMPLES = """examples:
  tumorbench perf train                                  # CPU, tiny UNet, 48^3 crops
  tumorbench perf train --backbone nnunet --iters 20
  tumorbench perf train --device cuda --size paper --crop 96 --amp
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EXAMPLES
    parser.add_argument("--backbone", default="unet", choices=["unet", "nnunet", "swin_unetr"])
    parser.add_argument("--size", default="tiny", choices=["tiny", "paper"], help="backbone preset")
    parser.add_argument("--crop", type=int, default=None, help="cubic crop edge in voxels (tiny 48, paper 96)")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--iters", type=int, default=20, help="timed iterations per variant")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations per variant")
    parser.add_argument("--synth-prob", type=float, default=0.5)
    parser.add_argument("--generator", default="hu", help="synthesis.registry name (falls back to a "
                        "built-in ellipsoid generator if that generator is not installed)")
    parser.add_argument("--organ", default="liver", choices=["liver", "pancreas", "kidney"])
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda, cuda:1")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers building batches")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast (CUDA only)")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    rows = run_benchmark(args)
    header = (f"{'variant':<26}{'it/s':>7}{'data ms/it':>12}{'step ms/it':>12}{'CPU s/it':>10}"
              f"{'synth/it':>10}")
    print(f"backbone={args.backbone} size={args.size} crop={rows[0]['crop']} batch={args.batch_size} "
          f"device={args.device} workers={args.num_workers} generator={rows[1]['generator']} "
          f"iters={args.iters} (means; variants interleaved)")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['variant']:<26}{row['its']:>7.2f}{row['data_ms']:>12.1f}{row['step_ms']:>12.1f}"
              f"{row['cpu_s']:>10.2f}{row['synth_per_it']:>10.2f}")
    base, synth = rows
    print(f"with synthesis: {synth['its'] / base['its']:.2f}x the baseline it/s; "
          f"data time {synth['data_ms'] / max(base['data_ms'], 1e-9):.1f}x")
    return 0


def _timer(device) -> tuple[float, float]:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter(), time.process_time()


class _Lane:
    """One variant's model, optimizer, batch stream and per-iteration timings."""

    def __init__(self, volumes, config, generator, device, n_batches: int):
        import torch

        from models.data import epoch_batches
        from models.inference import build_model
        from models.trainer import make_loss

        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(config.seed)
            self.model = build_model(config).to(device).train()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.loss_fn, self.config, self.device = make_loss(), config, device
        self.batches = epoch_batches(volumes, config, 0, n_batches, generator)
        self.data_s, self.step_s, self.cpu_s, self.n_synth = [], [], [], 0

    def step(self, timed: bool) -> None:
        from models.trainer import train_step

        t0, c0 = _timer(self.device)
        batch = next(self.batches)
        t1, _ = _timer(self.device)
        train_step(self.model, self.optimizer, self.loss_fn, batch, self.device, self.config.amp)
        t2, c2 = _timer(self.device)
        if timed:
            self.data_s.append(t1 - t0)
            self.step_s.append(t2 - t1)
            self.cpu_s.append(c2 - c0)
            self.n_synth += batch["n_synth"]

    def summary(self) -> dict:
        import numpy as np

        data, step = float(np.mean(self.data_s)), float(np.mean(self.step_s))
        return {"its": 1.0 / (data + step), "data_ms": 1e3 * data, "step_ms": 1e3 * step,
                "cpu_s": float(np.mean(self.cpu_s)), "synth_per_it": self.n_synth / len(self.data_s)}


def measure(volumes, configs_generators, device, iters: int, warmup: int) -> list[dict]:
    """Time ``iters`` iterations of each (config, generator) variant after ``warmup``.

    Iterations of the variants alternate, so machine load affects all of them alike; it/s is
    1 / (mean data + mean step wall time); CPU s/it is process CPU time (all threads).
    """
    lanes = [_Lane(volumes, cfg, gen, device, warmup + iters) for cfg, gen in configs_generators]
    for i in range(warmup + iters):
        for lane in lanes:
            lane.step(timed=i >= warmup)
    return [lane.summary() for lane in lanes]


class EllipsoidGenerator:
    """Fallback TumorGenerator while the Hu generator is not installed: one ellipsoid
    (radius 3-10 mm) per crop at a random organ voxel, hypo-attenuating by 40-80 HU with a soft
    edge, clipped to the organ. Cost is of the same order as simple model-based synthesis."""

    name = "ellipsoid"

    def __init__(self, organ: str):
        self.organ = organ

    def __call__(self, ct_hu, organ_mask, spacing, rng):
        import numpy as np
        from scipy import ndimage

        from synthesis.protocol import SynthesisOutput

        ct, masks, params = np.array(ct_hu, dtype=np.float32, copy=True), np.zeros(ct_hu.shape, bool), []
        grid = np.indices(ct.shape[1:], dtype=np.float32)
        for b in range(len(ct)):
            voxels = np.argwhere(organ_mask[b])
            if len(voxels) == 0:
                params.append({})
                continue
            center, radii = voxels[rng.integers(len(voxels))], rng.uniform(3, 10, 3) / np.asarray(spacing)
            inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, center, radii)) <= 1.0
            masks[b] = inside & organ_mask[b]
            soft = ndimage.gaussian_filter(masks[b].astype(np.float32), sigma=1.0)
            drop = float(rng.uniform(40, 80))
            ct[b] -= drop * soft
            params.append({"center": center.tolist(), "radii_vox": radii.tolist(), "drop_hu": drop})
        return SynthesisOutput(ct_hu=ct, tumor_mask=masks, params=tuple(params))


def _make_generator(name: str, organ: str, device):
    from benchmark.errors import InputError
    from synthesis.registry import make_generator, registered_names

    if name not in registered_names():
        raise InputError(f"--generator {name!r}: expected one of {registered_names()}")
    try:
        return make_generator(name, organ, device=str(device))
    except (ModuleNotFoundError, ImportError, AttributeError):
        return EllipsoidGenerator(organ)


def phantom_volumes(shape, n: int, seed: int):
    """``n`` in-memory cases (half with a tumor, half healthy): body, bright organ, dark tumor."""
    import numpy as np

    from models.volumes import in_memory_volume

    rng = np.random.default_rng(seed)
    grid = np.indices(shape, dtype=np.float32)
    center = np.asarray(shape, np.float32) / 2

    def ellipsoid(c, radii):
        return sum(((g - ci) / r) ** 2 for g, ci, r in zip(grid, c, radii)) <= 1.0

    volumes = []
    for i in range(n):
        body, organ = ellipsoid(center, center * 0.95), ellipsoid(center + rng.uniform(-3, 3, 3), center * 0.55)
        ct = np.where(body, 40.0, -1000.0).astype(np.float32) + rng.normal(0, 10, shape).astype(np.float32)
        ct[organ] += 60.0
        label = organ.astype(np.uint8)
        healthy = i % 2 == 1
        if not healthy:
            tumor = ellipsoid(center, center * 0.12) & organ
            ct[tumor] -= 70.0
            label[tumor] = 2
        volumes.append(in_memory_volume(f"case{i}", ct, label, healthy))
    return volumes


def run_benchmark(args) -> list[dict]:
    """Measure the baseline (no generator) and the synthesis variant on the same data."""
    import torch

    from models.config import TrainConfig

    device = torch.device(args.device)
    crop = args.crop or (96 if args.size == "paper" else 48)
    spacing = (1.0, 1.0, 1.0) if args.size == "paper" else (2.0, 2.0, 2.0)
    config = TrainConfig(backbone=args.backbone, size=args.size, crop_size=(crop,) * 3, spacing=spacing,
                         batch_size=args.batch_size, synth_prob=args.synth_prob, seed=args.seed,
                         num_workers=args.num_workers, amp=args.amp)
    shape = (int(crop * 2.3), crop * 2, int(crop * 1.5))
    volumes = phantom_volumes(shape, n=4, seed=args.seed)
    generator = _make_generator(args.generator, args.organ, device)
    variants = (("baseline (no synthesis)", None), (f"synthesis p={args.synth_prob}", generator))
    results = measure(volumes, [(config, gen) for _, gen in variants], device, args.iters, args.warmup)
    return [{"variant": name, "crop": crop, "generator": getattr(gen, "name", "-"), **row}
            for (name, gen), row in zip(variants, results)]
