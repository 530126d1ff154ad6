"""`tumorbench perf data --regime R`: crops per second per worker core of the training data path
with on-the-fly synthesis, and the DataLoader workers a GPU step rate needs.

What one DataLoader worker does per batch (``models.data.RunBatches``: crop, rotate, synthesis
on the healthy crops drawn for it, window, shift), at the paper's crop (96^3 at 1 mm), on the
memory-mapped int16 cache (``models.cache``) of realistic synthetic 1 mm cases (the cases of
`tumorbench perf data`). Timed in this process on one core (process CPU time, torch and BLAS on
one thread, as in a worker): crops per CPU-second = crops per second per worker core. Rounds of
the baseline and the current path are interleaved; medians. Synthetic regimes train on healthy
cases only (their tumors are synthetic): their rounds draw from the healthy cases.

Baseline: the data path before issue 30, kept in ``benchmark.perf.reference_impls``: Fortran-order
float32 crops reordered while stacking, whole-crop synthesis output copied into the batch, and for
hu and cellular the generators' whole-crop copies per tumor. The figures go to a JSON table
(``DATA_RATES``, one entry per regime) that the estimates read.
"""
from __future__ import annotations

import datetime
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

DATA_RATES = Path(__file__).with_name("data_rates.json")
PAPER_CROP = 96


def add_arguments(parser) -> None:
    from benchmark.estimates import IT_PER_S

    parser.add_argument("--regime", default=None,
                        help="real|hu|cellular|difftumor|<plug-in>: crops/s per worker core with on-the-fly "
                             "synthesis and the workers a GPU needs (absent: the memory benchmark, old vs new data path)")
    parser.add_argument("--gpu-it-s", type=float, default=IT_PER_S[("unet", "paper", "H200")],
                        help="GPU training steps per second to feed (default: the measured H200 U-Net paper "
                             "figure, benchmark.estimates.IT_PER_S)")
    parser.add_argument("--batches", type=int, default=20, help="timed batches per round (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of baseline and current (median)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the pre-change baseline")
    parser.add_argument("--checkpoint", default=None, help="generator weights (difftumor, weighted plug-ins)")
    parser.add_argument("--table", default=str(DATA_RATES),
                        help=f"JSON table the figures are merged into (default {DATA_RATES.name} in benchmark/perf)")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _time_batches(volumes, cfg, generator, batches: int, round_index: int, baseline: bool) -> tuple[float, int, int]:
    """(CPU seconds, crops, synthetic tumors) of ``batches`` worker batches (after one untimed)."""
    from benchmark.perf.reference_impls import whole_crop_batches
    from models.data import RunBatches

    make = whole_crop_batches if baseline else lambda *a: RunBatches(*a, True)
    dataset = make(volumes, cfg, round_index, round_index + 1, batches + 1, generator)
    dataset[0]  # first batch untimed: lazy imports, compiled kernels, page cache of the memmaps
    crops = synth = 0
    t0 = time.process_time()
    for index in range(1, batches + 1):
        batch = dataset[index][2]
        crops += batch["image"].shape[0]
        synth += batch["n_synth"]
    return time.process_time() - t0, crops, synth


def _generators(regime: str, organ: str, baseline: bool, checkpoint: str | None) -> dict:
    from synthesis.registry import make_generator

    current = None if regime == "real" else make_generator(regime, organ, checkpoint=checkpoint)
    out = {"current": current}
    if baseline:  # the data path before issue 30; a generator of its time where we changed it
        from benchmark.perf.reference_impls import WHOLE_CROP_BASELINES

        before = WHOLE_CROP_BASELINES[regime](current) if regime in WHOLE_CROP_BASELINES else current
        out = {"baseline": before, **out}
    for gen in out.values():
        if callable(getattr(gen, "warm_up", None)):
            gen.warm_up()
    return out


def measure(volumes, cfg, generators: dict, batches: int, rounds: int) -> dict[str, dict]:
    """Interleaved rounds per path; median crops per CPU-second and the synthesized fraction."""
    samples = {name: [] for name in generators}
    synth = {name: 0 for name in generators}
    crops = {name: 0 for name in generators}
    for round_index in range(rounds):
        for name, gen in generators.items():
            seconds, n, s = _time_batches(volumes, cfg, gen, batches, round_index, name == "baseline")
            samples[name].append(n / seconds)
            crops[name] += n
            synth[name] += s
    return {name: {"crops_per_core_s": statistics.median(v), "synth_fraction": synth[name] / crops[name],
                   "rounds": [round(x, 2) for x in v]} for name, v in samples.items()}


def workers_needed(crops_per_core_s: float, gpu_it_s: float, batch_size: int) -> int:
    """DataLoader workers (one core each) that produce ``gpu_it_s`` batches of ``batch_size`` per second."""
    return max(1, math.ceil(gpu_it_s * batch_size / crops_per_core_s))


def _volumes(args, items: list[dict], regime: str):
    from models.cache import cached_volumes

    out = Path(args.out)
    if regime != "real":
        items = [item for item in items if item["healthy"]]
    return cached_volumes(items, str(out / "cache"), (1.0, 1.0, 1.0), (args.crop,) * 3, progress=False)


def run_regime(args, make_items) -> int:
    """``make_items()``: the cases written by `benchmark.perf.data.make_dataset` under ``args.out``
    (called once the regime's generator is built)."""
    import torch

    from models.config import TrainConfig

    torch.set_num_threads(1)  # one worker = one core
    cfg = TrainConfig(crop_size=(args.crop,) * 3, spacing=(1.0, 1.0, 1.0), batch_size=args.batch_size,
                      num_workers=0, seed=args.seed)
    generators = _generators(args.regime, "liver", not args.no_baseline, args.checkpoint)  # bad name: fail first
    volumes = _volumes(args, make_items(), args.regime)
    rows = measure(volumes, cfg, generators, args.batches, args.rounds)
    need = args.gpu_it_s * args.batch_size
    print(f"regime {args.regime}: crop {args.crop}^3 at 1 mm, batch {args.batch_size}, {len(volumes)} cached cases, "
          f"{args.rounds} rounds x {args.batches} batches, CPU time of one core ({_cpu_model()})")
    print(f"{'path':10} {'crops/s/core':>13} {'synth':>6} {'workers for ' + f'{args.gpu_it_s:g} it/s':>22}")
    for name, row in rows.items():
        row["workers"] = workers_needed(row["crops_per_core_s"], args.gpu_it_s, args.batch_size)
        print(f"{name:10} {row['crops_per_core_s']:13.1f} {row['synth_fraction']:6.2f} {row['workers']:>22}")
    if "baseline" in rows:
        print(f"speed-up per core: {rows['current']['crops_per_core_s'] / rows['baseline']['crops_per_core_s']:.2f}x "
              f"(same run, interleaved rounds)")
    print(f"feeding {args.gpu_it_s:g} it/s x batch {args.batch_size} = {need:g} crops/s; workers = ceil(that / crops/s/core)")
    _write_table(Path(args.table), args, rows)
    return 0


def _write_table(path: Path, args, rows: dict) -> None:
    """Merge this regime's entry into the JSON table {regime: {...}} (other regimes kept)."""
    table = json.loads(path.read_text()) if path.is_file() else {}
    current = rows["current"]
    table[args.regime] = {
        "crops_per_core_s": round(current["crops_per_core_s"], 2),
        "baseline_crops_per_core_s": round(rows["baseline"]["crops_per_core_s"], 2) if "baseline" in rows else None,
        "synth_fraction": round(current["synth_fraction"], 3), "crop": args.crop, "batch_size": args.batch_size,
        "cpu": _cpu_model(), "date": datetime.date.today().isoformat(),
        "command": "tumorbench perf data " + " ".join(sys.argv[3:] if sys.argv[1:3] == ["perf", "data"] else
                                                       [f"--regime {args.regime}"]),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dict(sorted(table.items())), indent=1) + "\n")
    tmp.replace(path)
    print(f"written: {path} [{args.regime}]")
