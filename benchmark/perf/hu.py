"""`tumorbench perf hu`: ms per tumor of Hu synthesis on a 1 mm 366x303x336 CT, per size type.

Ours works on each tumor's box; the in-run baseline is a straightforward full-volume
implementation of the same algorithm with the reference's structure (SyntheticTumors
``SynthesisTumor``): organ bbox scan, a cut-out of a precomputed 420x300x320 texture bank,
ellipsoids elastically deformed by three whole-canvas resamplings in a padded canvas, and the
Gaussian edge blur + blend over the whole organ box. Both use the same sampled params, and the
baseline's masks are checked to equal ours voxel for voxel.
"""
from __future__ import annotations

import statistics
import time

import numpy as np

REFERENCE_MS = "130-180"  # reference: 0.13-0.18 s per tumor at 1 mm 366x303x336 (bank precomputed)
REFERENCE_RANGE_MS = (130.0, 180.0)
REFERENCE_BANK = "8.5 s per texture at init, 10 textures, 3.2 GB per process"
PAD = {"large": 140}  # reference canvas padding per side (80 otherwise; 140 for DiffTumor's large)


_CLOCK = [time.process_time]  # set by run(): process CPU time or wall clock


def add_arguments(parser) -> None:
    parser.add_argument("--repeats", type=int, default=25, help="timed tumors per size type (median; default 25)")
    parser.add_argument("--naive-repeats", type=int, default=3, help="timed baseline tumors per size type (default 3)")
    parser.add_argument("--shape", type=int, nargs=3, default=(366, 303, 336), metavar=("NX", "NY", "NZ"),
                        help="CT shape at 1 mm (default: the reference's 366 303 336)")
    parser.add_argument("--bank-shape", type=int, nargs=3, default=(420, 300, 320), metavar=("NX", "NY", "NZ"),
                        help="baseline texture bank shape (reference 420 300 320)")
    parser.add_argument("--geometry", choices=["hu2023", "difftumor"], default="hu2023",
                        help="size preset (hu2023: 3-10 tiny/small per tumor as the reference)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the full-volume baseline")
    parser.add_argument("--count-repeats", type=int, default=3,
                        help="rounds of `synthesize --count 21` minus `--count 1` per size type (median; default 3)")
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                        help="cpu: CPU time of this process (stable on a shared machine; run with "
                             "OMP_NUM_THREADS=1), wall: elapsed time (default cpu)")


def build_phantom(shape, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """1 mm CT (float32 HU) with a liver-sized ellipsoid organ (about 1.7 L) and noise."""
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    centre = [0.45 * shape[0], 0.5 * shape[1], 0.5 * shape[2]]
    organ = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, (95, 75, 58))) <= 1
    ct = rng.normal(40.0, 12.0, shape).astype(np.float32)
    ct[organ] += 60.0
    return ct, organ


def naive_tumor(ct: np.ndarray, organ: np.ndarray, params, bank: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Reference-structured full-organ-box implementation (in place); returns the tumor mask."""
    from scipy import ndimage

    from benchmark.perf.reference_impls import deform_volume_reference
    from synthesis.elastic import plane_displacements
    from synthesis.geometry import organ_bbox

    lo, hi = organ_bbox(organ)
    box = tuple(slice(int(a), int(b) + 1) for a, b in zip(lo, hi))
    organ_box, ct_box = organ[box], ct[box]
    if any(t < n for t, n in zip(bank.shape, organ_box.shape)):  # small bank (tests): tile it
        bank = np.pad(bank, [(0, max(0, n - t)) for t, n in zip(bank.shape, organ_box.shape)], mode="wrap")
    start = [int(rng.integers(0, max(1, t - n))) for t, n in zip(bank.shape, organ_box.shape)]
    texture = bank[tuple(slice(s, s + n) for s, n in zip(start, organ_box.shape))]
    geo = params.geometry
    pad = PAD.get(geo.size_type, 80)
    canvas = np.zeros(tuple(n + 2 * pad for n in organ_box.shape), np.int8)
    deform_rng = np.random.default_rng(geo.deform_seed)
    spacing = np.asarray(params.spacing)
    for centre, radii_mm, sigma in zip(geo.centres, geo.radii_mm, geo.elastic_sigmas_mm):
        radii = np.maximum(np.asarray(radii_mm) / spacing, 0.5)
        shape = [max(4, int(np.ceil(4 * r))) for r in radii]
        mid = np.asarray([n // 2 for n in shape])
        fields = plane_displacements(shape, sigma / spacing, deform_rng)
        grid = np.ogrid[tuple(slice(0, n) for n in shape)]
        shape_mask = deform_volume_reference(sum(((g - m) / r) ** 2 for g, m, r in zip(grid, mid, radii)) <= 1, fields)
        corner = np.asarray(centre) - lo + pad - mid
        canvas[tuple(slice(c, c + n) for c, n in zip(corner, shape))] += shape_mask
    geo_mask = canvas[pad:-pad, pad:-pad, pad:-pad] >= 1
    if geo.clip_to_organ:
        geo_mask &= organ_box
    blur = ndimage.gaussian_filter(geo_mask.astype(np.float64), params.edge_sigma_mm / spacing)
    region = organ_box | geo_mask
    ct_box[region] = (ct_box - texture * blur * params.difference_hu)[region]
    out = np.zeros(organ.shape, bool)
    out[box] = geo_mask
    return out


def _vs_reference(ours_ms: float) -> str:
    """Speed-up range against the reference's published 130-180 ms per tumor."""
    return f"{REFERENCE_RANGE_MS[0] / ours_ms:.1f}-{REFERENCE_RANGE_MS[1] / ours_ms:.1f}x"


def _median_ms(samples) -> float:
    return 1000.0 * statistics.median(samples)


def _timed_tumor(ct, healthy, organ_arg, organ, size_type, rng, ranges):
    """Sample + apply one tumor in place, then restore the touched boxes (not timed)."""
    from synthesis.hu import apply_tumor_, sample_params

    t0 = _CLOCK[0]()
    params = sample_params(organ_arg() if callable(organ_arg) else organ_arg, (1.0, 1.0, 1.0), rng, ranges,
                           "liver", size_type)
    boxes = apply_tumor_(ct, organ, params)
    elapsed = _CLOCK[0]() - t0
    for box, _ in boxes:
        ct[box] = healthy[box]
    return elapsed, params


def _time_ours(ct, healthy, organ, size_type, repeats, rng, ranges):
    from synthesis.geometry import prepare_organ
    from synthesis.hu import synthesize

    prepared = prepare_organ(organ)
    with_scan, reuse, pure, all_params = [], [], [], []
    seeds = rng.integers(2**31 - 1, size=repeats)
    # the same tumors in both columns (same seeds), each column in its own loop (no tumor finds
    # the caches warm from its twin): the columns differ by the organ scan only
    for seed in seeds:
        with_scan.append(_timed_tumor(ct, healthy, lambda: prepare_organ(organ), organ, size_type,
                                      np.random.default_rng(seed), ranges)[0])
    for seed in seeds:
        elapsed, params = _timed_tumor(ct, healthy, prepared, organ, size_type, np.random.default_rng(seed), ranges)
        reuse.append(elapsed)
        all_params.append(params)
    for params in all_params[:3]:
        t0 = _CLOCK[0]()
        synthesize(ct, organ, params)
        pure.append(_CLOCK[0]() - t0)
    return _median_ms(with_scan), _median_ms(reuse), _median_ms(pure), all_params


def _time_naive(ct, healthy, organ, params_list, bank, rng):
    from synthesis.hu import apply_tumor_

    times, identical = [], True
    for params in params_list:
        t0 = _CLOCK[0]()
        mask = naive_tumor(ct, organ, params, bank, rng)
        times.append(_CLOCK[0]() - t0)
        ct[...] = healthy
        ours = np.zeros(organ.shape, bool)
        for box, tumor in apply_tumor_(ct, organ, params):
            ours[box] |= tumor
            ct[box] = healthy[box]
        identical &= bool(np.array_equal(mask, ours))
    return _median_ms(times), identical


def _time_count(ct, organ, size_type, rounds, rng) -> tuple[float, float]:
    """ms per tumor as `tumorbench synthesize --count N` adds them to a whole CT ((count 21 - count 1)
    / 20, the CT copy and file I/O cancel), and of the box-local pure API (``replay_local``: the
    tumor on its box, the CT untouched), medians over ``rounds``."""
    from benchmark.synthesize import _generate
    from synthesis.hu import HuGenerator

    gen = HuGenerator("liver", size_probs={size_type: 1.0})
    per_tumor, pure = [], []
    for seed in rng.integers(2**31 - 1, size=rounds):
        timed = []
        for count in (1, 21):
            t0 = _CLOCK[0]()
            _, _, params = _generate(gen, ct, organ, (1.0, 1.0, 1.0), count, int(seed), False)
            timed.append(_CLOCK[0]() - t0)
        per_tumor.append((timed[1] - timed[0]) / 20)
        t0 = _CLOCK[0]()
        for tumor in params[:5]:
            gen.replay_local(ct, organ, tumor)
        pure.append((_CLOCK[0]() - t0) / 5)
    return _median_ms(per_tumor), _median_ms(pure)


def _print_count(ct, organ, rows, rounds, rng) -> None:
    """The `synthesize --count` lines (a whole CT, work on the tumor's box) next to the baseline."""
    from synthesis.geometry import SIZE_TYPES

    print(f"{'size':7} {'count ms':>9} {'box API ms':>11} {'baseline ms':>12} {'speed-up':>9}   "
          "(`synthesize --count` use on this CT)")
    for size_type in SIZE_TYPES:
        count_ms, pure_ms = _time_count(ct, organ, size_type, rounds, rng)
        naive = rows[size_type][1]
        print(f"{size_type:7} {count_ms:9.1f} {pure_ms:11.1f} {naive:12.1f} {naive / count_ms:8.1f}x")
    print("count ms: (synthesize --count 21 - --count 1) / 20, generator on the whole CT, per tumor; box API: "
          "HuGenerator.replay_local (tumor on its box, no CT copy); baseline: as above, same run")


def run(args) -> int:
    from synthesis.geometry import SIZE_TYPES
    from synthesis.hu import HuRanges, sample_params
    from benchmark.perf.reference_impls import reference_texture

    _CLOCK[0] = time.process_time if args.clock == "cpu" else time.perf_counter
    rng = np.random.default_rng(args.seed)
    ct, organ = build_phantom(tuple(args.shape), rng)
    healthy = ct.copy()
    ranges = HuRanges(geometry=args.geometry)
    print(f"CT {tuple(args.shape)} at 1 mm, organ {organ.sum() / 1e6:.2f} L, geometry preset {args.geometry}, "
          f"{args.clock} time")
    for size_type in SIZE_TYPES:  # warm-up (imports, caches)
        sample_params(organ, (1.0, 1.0, 1.0), rng, ranges, "liver", size_type)
    bank = None
    if not args.no_baseline:
        t0 = _CLOCK[0]()
        bank = reference_texture(tuple(args.bank_shape), 3.0, 4.0, 0.2, 0.05, 0.52, rng)
        print(f"baseline texture bank {tuple(args.bank_shape)}: {_CLOCK[0]() - t0:.1f} s per texture, "
              f"{bank.nbytes / 1e9:.2f} GB (reference: {REFERENCE_BANK}); ours: no bank")
    header = (f"{'size':7} {'ours ms':>9} {'ours ms*':>9} {'pure API ms':>12} {'baseline ms':>12} "
              f"{'speed-up':>9} {'reference ms':>13} {'vs reference':>13}")
    print(header)
    rows = {}
    for size_type in SIZE_TYPES:
        with_scan, reuse, pure, params = _time_ours(ct, healthy, organ, size_type, args.repeats, rng, ranges)
        naive, same = (float("nan"), None)
        if bank is not None:
            naive, same = _time_naive(ct, healthy, organ, params[: args.naive_repeats], bank, rng)
        rows[size_type] = (with_scan, naive, reuse)
        check = "" if same is None else ("  masks identical" if same else "  MASKS DIFFER")
        print(f"{size_type:7} {with_scan:9.1f} {reuse:9.1f} {pure:12.1f} {naive:12.1f} "
              f"{naive / with_scan:8.1f}x {REFERENCE_MS:>13} {_vs_reference(with_scan):>13}{check}")
    _print_mix(rows)
    if args.count_repeats > 0:
        _print_count(ct, organ, rows, args.count_repeats, rng)
    return 0


def _print_mix(rows) -> None:
    """Default size mix row (tiny/small 0.4 each, medium/large 0.1) and the column legend."""
    from synthesis.geometry import SIZE_TYPES, normalise_size_probs

    probs = normalise_size_probs(None)
    mix, mix_naive, mix_reuse = (sum(probs[t] * rows[t][c] for t in SIZE_TYPES) for c in range(3))
    print(f"{'mix':7} {mix:9.1f} {mix_reuse:9.1f} {'':12} {mix_naive:12.1f} {mix_naive / mix:8.1f}x {REFERENCE_MS:>13} "
          f"{_vs_reference(mix):>13}"
          f"   (default mix: tiny/small 0.4 each, medium/large 0.1; organ scanned once per CT: "
          f"{_vs_reference(mix_reuse)} vs reference)")
    print("ours ms: sample params (incl. the organ-mask scan) + synthesis in place; ours ms*: organ scanned "
          "once per CT; pure API: synthesize() incl. copying the whole CT; baseline: full organ box, "
          "texture bank cut-out (medians); vs reference: the published 130-180 ms / ours ms")
