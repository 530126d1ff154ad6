"""`tumorbench perf cellular`: ms per cellular-automaton tumor on a 1 mm 366x303x336 CT, next to
Hu et al. tumors of the same size types timed in the same run on the same CT.

Both are timed as "sample the params (organ scan included) + write the tumor into the CT in place
on its box"; the CT is restored (untimed) after each tumor. The cellular generator's size types
use the calibrated step ranges (tiny 17-27 ... large 112-180 steps); 'released' is the released
code's step range for the liver (5-149 steps, uniform), which is what a grid's cellular regime
draws by default.
"""
from __future__ import annotations

import statistics
import time

import numpy as np

_CLOCK = [time.process_time]


def add_arguments(parser) -> None:
    parser.add_argument("--repeats", type=int, default=9, help="timed tumors per size type (median; default 9)")
    parser.add_argument("--shape", type=int, nargs=3, default=(366, 303, 336), metavar=("NX", "NY", "NZ"),
                        help="CT shape at 1 mm (default: the Hu reference's 366 303 336)")
    parser.add_argument("--variant", choices=["paper", "released"], default="paper", help="automaton rules")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                        help="cpu: CPU time of this process (run with OMP_NUM_THREADS=1), wall: elapsed")


def _time_cellular(ct, healthy, organ, size_probs, variant, seeds) -> tuple[float, list]:
    from synthesis.cellular.generator import apply_tumor_, sample

    times, steps = [], []
    for seed in seeds:
        t0 = _CLOCK[0]()
        params, seeded = sample(ct, organ, (1.0, 1.0, 1.0), np.random.default_rng(seed), organ_name="liver",
                                variant=variant, size_probs=size_probs)
        box, _ = apply_tumor_(ct, organ, params, seeded)
        times.append(_CLOCK[0]() - t0)
        ct[box] = healthy[box]
        steps.append(params.steps)
    return 1000.0 * statistics.median(times), steps


def _time_hu(ct, healthy, organ, size_type, seeds) -> float:
    from benchmark.perf.hu import _timed_tumor
    from synthesis.geometry import prepare_organ
    from synthesis.hu import HuRanges

    times = [_timed_tumor(ct, healthy, lambda: prepare_organ(organ), organ, size_type, np.random.default_rng(seed),
                          HuRanges())[0] for seed in seeds]
    return 1000.0 * statistics.median(times)


def run(args) -> int:
    from benchmark.perf.hu import build_phantom
    from synthesis.cellular.generator import CellularGenerator
    from synthesis.hu import HuGenerator
    from synthesis.sizes import SIZE_TYPES

    _CLOCK[0] = time.process_time if args.clock == "cpu" else time.perf_counter
    rng = np.random.default_rng(args.seed)
    ct, organ = build_phantom(tuple(args.shape), rng)
    healthy = ct.copy()
    CellularGenerator("liver", variant=args.variant).warm_up()  # compiled code loaded, not timed
    HuGenerator("liver").warm_up()
    print(f"CT {tuple(args.shape)} at 1 mm, organ {organ.sum() / 1e6:.2f} L (liver rules), variant {args.variant}, "
          f"{args.clock} time, median of {args.repeats} tumors")
    print(f"{'size':9} {'steps':>9} {'cellular ms':>12} {'Hu ms':>9} {'cellular / Hu':>14}")
    seeds = rng.integers(2**31 - 1, size=args.repeats)
    for size_type in (*SIZE_TYPES, "released"):
        probs = None if size_type == "released" else {size_type: 1.0}
        cellular, steps = _time_cellular(ct, healthy, organ, probs, args.variant, seeds)
        hu = _time_hu(ct, healthy, organ, size_type, seeds) if size_type != "released" else float("nan")
        ratio = f"{cellular / hu:13.1f}x" if size_type != "released" else f"{'':14}"
        print(f"{size_type:9} {f'{min(steps)}-{max(steps)}':>9} {cellular:12.1f} {hu:9.1f} {ratio}")
    return 0
