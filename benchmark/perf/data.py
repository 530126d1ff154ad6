"""`tumorbench perf data`: training-data path memory and crops/s, old (float32 in RAM, a new
DataLoader per epoch) vs new (memory-mapped int16 cache, one DataLoader per run), same run.

A synthetic 1 mm dataset (air, elliptic body, organ, tumors in half of the cases; int16 NIfTI)
is written once under ``--out``. Each path runs in a fresh spawned process (the new path first once to
build the cache, then ``--repeats`` interleaved rounds of old and new) that loads the cases
and draws ``epochs x iters`` batches of ``batch`` crops (no synthesis, no model: the data path
alone) with ``--workers`` DataLoader workers. Memory is sampled every 50 ms from
``/proc/<pid>/smaps_rollup`` of that process and its workers: peak RSS (sum, shared pages
counted once per process), peak PSS (shared pages split) and peak anonymous PSS (memory that
cannot be given back: the in-RAM volumes; memory-mapped cache pages are page cache).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import threading
import time
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="perf_data", help="folder for the dataset and the cache (reused)")
    parser.add_argument("--cases", type=int, default=16, help="training cases (paper: ~210)")
    parser.add_argument("--shape", type=int, nargs=3, default=[384, 384, 200], metavar=("X", "Y", "Z"),
                        help="case grid in voxels at 1 mm; Z varies by +-25%% per case")
    parser.add_argument("--crop", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--iters", type=int, default=25, help="batches per epoch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2,
                        help="rounds of (old, new) after the cache is built; median crops/s, max peaks")
    parser.add_argument("--paths", choices=["both", "new"], default="both",
                        help="'new' skips the in-RAM path (for datasets bigger than this machine's RAM)")
    from benchmark.perf.data_regime import add_arguments as add_regime_arguments

    add_regime_arguments(parser)


def make_dataset(out: Path, n: int, shape, seed: int) -> list[dict]:
    """``n`` int16 1 mm cases (written once; existing files are reused)."""
    import nibabel as nib
    import numpy as np

    items = []
    for i in range(n):
        folder = out / "cases" / f"case{i:03d}"
        ct_path, lab_path = folder / "ct.nii.gz", folder / "labels.nii.gz"
        items.append({"case_id": f"case{i:03d}", "image": str(ct_path), "label": str(lab_path), "healthy": i % 2 == 1})
        if ct_path.is_file() and lab_path.is_file():
            continue
        rng = np.random.default_rng([seed, i])
        dims = (shape[0], shape[1], int(shape[2] * rng.uniform(0.75, 1.25)))
        x, y, z = np.ogrid[: dims[0], : dims[1], : dims[2]]
        body = ((x - dims[0] / 2) / (0.42 * dims[0])) ** 2 + ((y - dims[1] / 2) / (0.32 * dims[1])) ** 2 <= 1
        organ = (((x - 0.4 * dims[0]) / 60) ** 2 + ((y - 0.45 * dims[1]) / 50) ** 2
                 + ((z - dims[2] / 2) / 45) ** 2) <= 1
        ct = np.where(body, 40, -1024).astype(np.int16) + rng.integers(-15, 16, dims, dtype=np.int16)
        label = np.broadcast_to(organ, dims).astype(np.uint8) * np.broadcast_to(body, dims)
        ct[label == 1] += 60
        if i % 2 == 0:
            tumor = (((x - 0.4 * dims[0]) / 12) ** 2 + ((y - 0.45 * dims[1]) / 12) ** 2
                     + ((z - dims[2] / 2) / 12) ** 2) <= 1
            tumor = np.broadcast_to(tumor, dims) & (label == 1)
            ct[tumor] -= 50
            label[tumor] = 2
        folder.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(ct, np.eye(4)), str(ct_path))
        nib.save(nib.Nifti1Image(label, np.eye(4)), str(lab_path))
    return items


def _rollup(pid: int) -> dict[str, int]:
    fields = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
            key, value = line.split(":", 1)
            fields[key] = int(value.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return fields


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


class MemorySampler:
    """Peak RSS / PSS / anonymous PSS of this process plus its children, sampled in a thread."""

    def __init__(self, every_s: float = 0.05):
        self.every_s, self.peak = every_s, {"rss": 0, "pss": 0, "pss_anon": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            total = {"rss": 0, "pss": 0, "pss_anon": 0}
            for pid in [me, *_children(me)]:
                r = _rollup(pid)
                total["rss"] += r.get("Rss", 0)
                total["pss"] += r.get("Pss", 0)
                total["pss_anon"] += r.get("Pss_Anon", 0)
            self.peak = {k: max(v, total[k]) for k, v in self.peak.items()}
            self._stop.wait(self.every_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def measure_path(path: str, items: list[dict], cache_dir: str, cfg_dict: dict, epochs: int, iters: int) -> dict:
    """Prepare the volumes, then draw every batch; timings and memory peaks."""
    from models.cache import cached_volumes
    from models.config import TrainConfig
    from models.data import epoch_batches, run_batches
    from models.volumes import load_volumes

    cfg = TrainConfig.from_dict(cfg_dict)
    with MemorySampler() as sampler:
        t0 = time.perf_counter()
        if path == "old":
            volumes = load_volumes(items, cfg.crop_size, progress=False)
        else:
            volumes = cached_volumes(items, cache_dir, cfg.spacing, cfg.crop_size, progress=False)
        t1 = time.perf_counter()
        n = 0
        if path == "old":  # as before: a new DataLoader (and new workers) every epoch
            for epoch in range(epochs):
                n += sum(b["image"].shape[0] for b in epoch_batches(volumes, cfg, epoch, iters, None))
        else:
            n = sum(b["image"].shape[0] for b in run_batches(volumes, cfg, 0, epochs, iters, None))
        t2 = time.perf_counter()
    return {"path": path, "prepare_s": t1 - t0, "crops": n, "crops_per_s": n / (t2 - t1), **sampler.peak}


def _measure_alone(*args) -> dict:
    import torch

    torch.set_num_threads(1)  # the workers do the work; no intra-op pool competing with them
    return measure_path(*args)


def _in_child(path, items, cache_dir, cfg_dict, epochs, iters) -> dict:
    """`measure_path` in a fresh spawned process (peaks of one path only)."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_measure_alone, path, items, cache_dir, cfg_dict, epochs, iters).result()


def run(args: argparse.Namespace) -> int:
    from models.config import TrainConfig

    if args.regime is not None:  # crops/s per worker core with synthesis (benchmark/perf/data_regime.py)
        from benchmark.perf.data_regime import run_regime

        return run_regime(args, lambda: make_dataset(Path(args.out), args.cases, args.shape, args.seed))

    out = Path(args.out)
    t0 = time.perf_counter()
    items = make_dataset(out, args.cases, args.shape, args.seed)
    made = time.perf_counter() - t0
    cfg = TrainConfig(crop_size=(args.crop,) * 3, spacing=(1.0, 1.0, 1.0), batch_size=args.batch_size,
                      num_workers=args.workers, seed=args.seed)
    cache = out / "cache"
    cold = not cache.is_dir()
    args_of = (items, str(cache), cfg.to_dict(), args.epochs, args.iters)
    first = _in_child("new", *args_of)  # builds the cache when it is missing
    first["path"] = "new (cache build)" if cold else "new (first)"
    paths = ("old", "new") if args.paths == "both" else ("new",)
    runs = [_in_child(p, *args_of) for _ in range(args.repeats) for p in paths]  # interleaved: load hits both
    rows = [first] + [_combine([r for r in runs if r["path"] == p]) for p in paths]
    gib = 1024**3
    voxels = sum(_case_voxels(item) for item in items)
    print(f"dataset: {args.cases} cases, {voxels / 1e6:.0f} M voxels ({made:.0f} s to write/reuse), "
          f"crop {args.crop}^3 x batch {args.batch_size}, {args.workers} workers, {args.epochs} epochs x "
          f"{args.iters} batches")
    print(f"{'path':<18} {'prepare s':>9} {'crops/s':>8} {'peak RSS GB':>11} {'peak PSS GB':>11} {'peak anon GB':>12}")
    for r in rows:
        print(f"{r['path']:<18} {r['prepare_s']:>9.1f} {r['crops_per_s']:>8.1f} {r['rss'] / gib:>11.2f} "
              f"{r['pss'] / gib:>11.2f} {r['pss_anon'] / gib:>12.2f}")
    (out / "perf_data.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1, default=str))
    return 0


def _combine(runs: list[dict]) -> dict:
    """Median crops/s and prepare time, maximum peaks, over the repeats of one path."""
    import numpy as np

    out = {"path": f"{runs[0]['path']} (x{len(runs)})", "crops": runs[0]["crops"]}
    for key in ("prepare_s", "crops_per_s"):
        out[key] = float(np.median([r[key] for r in runs]))
    for key in ("rss", "pss", "pss_anon"):
        out[key] = max(r[key] for r in runs)
    return out


def _case_voxels(item: dict) -> int:
    import nibabel as nib
    import numpy as np

    return int(np.prod(nib.load(item["image"]).shape))
