"""The engineering measures that need time or other processes: ms per tumor by size bin beside
Hu in the same run, peak memory (a fresh process), and determinism across worker counts.

Timing interleaves the generator and Hu tumor by tumor on the same case, so both see the same
machine load; the ratio is the number to compare, not the milliseconds.
"""
from __future__ import annotations

import hashlib
import resource
import sys
import time
from contextlib import contextmanager
from multiprocessing import get_context
from typing import Any, Mapping, Sequence

import numpy as np

from benchmark.scorecard.eng_cases import EngCase
from benchmark.scorecard.eng_checks import draw

SIZE_BINS = ("tiny", "small", "medium", "large")
_WORKER: dict[str, Any] = {}  # the generator of a worker process (built once per process)


def build(name: str, organ: str, kwargs: Mapping[str, Any], size: str | Mapping[str, float] | None = None):
    """Generator ``name`` (on the CPU unless ``kwargs`` say otherwise); ``size`` asks for one size
    type or a size mix (generators with size_probs), None for the generator's own mix."""
    from synthesis.registry import make_generator

    extra = {} if size is None else {"size_probs": {size: 1.0} if isinstance(size, str) else dict(size)}
    return make_generator(name, organ, **{"device": "cpu", **dict(kwargs), **extra})


@contextmanager
def one_cpu_thread():
    """Torch on one CPU thread while the checks run (restored after), as in a DataLoader worker
    and as Hu's kernels run: timings compare like with like, and on a loaded machine torch's
    thread pool does not spin (a tiny DiffTumor tumor: 0.24 s on one thread, 7 s on two)."""
    torch = sys.modules.get("torch")  # only a generator that uses torch has imported it
    before = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if torch is not None:
            torch.set_num_threads(before)


def _timed(generator, case: EngCase, seed) -> float:
    """CPU ms of this process for one tumor (steadier than wall time on a shared machine)."""
    start = time.process_time()
    draw(generator, case, seed)
    return (time.process_time() - start) * 1000.0


def time_bin(generator, hu, case: EngCase, repeats: int, seed: int, budget_s: float = float("inf")
             ) -> dict[str, Any]:
    """Median ms per tumor of ``generator`` and of ``hu``, interleaved, after one warm-up each:
    ``repeats`` (rounded up to even) tumors each, fewer (at least two) once the generator has used
    ``budget_s`` seconds. Each seed is drawn generator-then-Hu and Hu-then-generator (the second
    of a pair finds warmer caches), so the order favours neither."""
    _timed(generator, case, (seed, 500))
    _timed(hu, case, (seed, 500))
    ours, theirs = [], []
    for k in range((repeats + 1) // 2):
        if ours and sum(ours) / 1000.0 >= budget_s:
            break
        for first, second, times in ((generator, hu, (ours, theirs)), (hu, generator, (theirs, ours))):
            times[0].append(_timed(first, case, (seed, 501 + k)))
            times[1].append(_timed(second, case, (seed, 501 + k)))
    ms, hu_ms = float(np.median(ours)), float(np.median(theirs))
    return {"ms_per_tumor": round(ms, 2), "hu_ms_per_tumor": round(hu_ms, 2), "ratio": round(ms / hu_ms, 3),
            "n": len(ours)}


def timing_section(name: str, organ: str, kwargs: Mapping[str, Any], case: EngCase, repeats: int,
                   seed: int, sized: bool, budget_s: float = float("inf")) -> dict[str, Any]:
    """Per size bin (or one bin "default" for a generator without size types): ms per tumor,
    Hu's ms in the same run, ratio. A bin the generator cannot draw gets an ``error``."""
    bins = SIZE_BINS if sized else ("default",)
    out: dict[str, Any] = {}
    for size in bins:
        chosen = None if size == "default" else size
        try:
            generator = build(name, organ, kwargs, chosen)
            out[size] = time_bin(generator, build("hu", organ, {}, chosen), case, repeats, seed, budget_s)
        except Exception as exc:  # noqa: BLE001 (a size the generator cannot draw: say so, go on)
            out[size] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def _peak_memory_task(name, organ, kwargs, case, sizes, seed) -> tuple[float, float]:
    """(peak RSS once the generator is built, peak RSS after one tumor per size), MB."""
    generator = build(name, organ, kwargs)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    with one_cpu_thread():
        for k, size in enumerate(sizes):
            try:
                draw(build(name, organ, kwargs, size) if size else generator, case, (seed, 601 + k))
            except Exception:  # noqa: BLE001 (sizes it cannot draw are reported by the timing)
                continue
    return before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def start_peak_memory(name, organ, kwargs, case: EngCase, sized: bool, seed: int):
    """Start the peak-memory measurement in a fresh process; ``.get()`` the async result later."""
    pool = get_context("spawn").Pool(1)
    result = pool.apply_async(_peak_memory_task, (name, organ, dict(kwargs), case,
                                                  SIZE_BINS if sized else (None,), seed))
    pool.close()
    return pool, result


def finish_peak_memory(pool, result, case: EngCase) -> dict[str, Any]:
    """{'peak_rss_mb': the process's peak, 'synthesis_mb': its rise over the built generator's, ...}."""
    before, peak = result.get()
    pool.join()
    return {"peak_rss_mb": round(peak, 1), "synthesis_mb": round(peak - before, 1), "ct_shape": list(case.ct.shape),
            "spacing_mm": list(case.spacing),
            "method": "peak RSS (ru_maxrss) of a fresh process that builds the generator and draws one tumor "
                      "per size bin; synthesis_mb: its rise once the generator is built"}


def _fingerprint(generator, case: EngCase, seed) -> str:
    new, mask, _ = draw(generator, case, seed)
    digest = hashlib.sha256(np.ascontiguousarray(new, np.float32).tobytes())
    digest.update(np.packbits(mask).tobytes())
    return digest.hexdigest()


def _worker_init(name, organ, kwargs) -> None:
    _WORKER["generator"] = build(name, organ, kwargs)
    if "torch" in sys.modules:  # as a DataLoader worker (and one_cpu_thread here)
        sys.modules["torch"].set_num_threads(1)


def _worker_task(task) -> str:
    case, seed = task
    return _fingerprint(_WORKER["generator"], case, seed)


def start_determinism(name: str, organ: str, kwargs: Mapping[str, Any], cases: Sequence[EngCase], seed: int,
                      workers: int = 2):
    """Start drawing one tumor per case (one seed each) in ``workers`` spawned worker processes,
    as DataLoader workers draw them; ``finish_determinism`` compares them with this process's."""
    tasks = [(case, (seed, 700 + k)) for k, case in enumerate(cases)]
    pool = get_context("spawn").Pool(workers, _worker_init, (name, organ, dict(kwargs)))
    result = pool.map_async(_worker_task, tasks, chunksize=1)
    pool.close()
    return pool, result, tasks, workers


def finish_determinism(generator, started) -> dict[str, Any]:
    """The same tumors (sha256 of CT and mask) drawn here one after the other and by the workers:
    a generator with hidden state or global randomness differs."""
    pool, result, tasks, workers = started
    here = [_fingerprint(generator, case, s) for case, s in tasks]
    there = result.get()
    pool.join()
    differ = [k for k, (a, b) in enumerate(zip(here, there)) if a != b]
    if differ:
        return {"ok": False, "detail": f"{len(differ)} of {len(tasks)} tumors differ between 1 process and "
                                       f"{workers} workers (hidden state or global randomness?)"}
    return {"ok": True, "detail": f"{len(tasks)} tumors identical in 1 process and in {workers} worker processes"}
