"""The cellular automaton of Pixel2Cancer (Lai et al., MICCAI 2024), compiled with numba.

State per voxel (int32): 0 organ tissue, 1..threshold tumor population, -1 dead, and
outrange..outrange+2 boundary (outside the organ, or a vessel: HU >= outrange), where the
extra +1/+2 is accumulated "pressure". Density (int32) quantises HU into the tissue levels
lower, lower+20, lower+40, and outrange for boundary voxels.

One growth step: each voxel reads its OWN state from the previous step and its neighbours'
from the live array (the released CUDA kernel's semantics). Cells 1..4 only grow; 5..9 grow and
spread; full cells (>= threshold) spread, push on boundary voxels (+1, up to outrange+2) and
invade a boundary voxel already pushed past outrange+2 within the step (it becomes tissue). A
spread makes up to 3 tries at a random neighbour of the 3x3x3 neighbourhood (self included) for
one success; a target must be tissue (density gate) below threshold.

Randomness is a counter-based hash of (key, step, voxel, try), so the result does not depend on
anything but the params: every tumor replays bit for bit. Voxels are processed tile by tile (8^3
tiles, raster order), skipping tiles with no living cell nearby: the cost follows the tumor.
"""
from __future__ import annotations

import numba as nb
import numpy as np

TILE = 4
GATE_PAPER, GATE_RELEASED = 0, 1
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)


@nb.njit(cache=True, inline="always")
def _mix(z):
    """splitmix64 finaliser (uint64 -> uint64)."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@nb.njit(cache=True, inline="always")
def uniform(key, step, voxel, draw):
    """A uniform in (0, 1] that depends only on its four integer arguments."""
    h = _mix(np.uint64(key) + _GOLDEN * np.uint64(step + 1))
    h = _mix(h ^ np.uint64(voxel))
    h = _mix(h + _GOLDEN * np.uint64(draw + 1))
    return (np.float64(h >> _S11) + 1.0) * (1.0 / 9007199254740992.0)


@nb.njit(cache=True, inline="always")
def _bits(key, step, voxel):
    """64 random bits for one voxel and step: the 3 tries take 16 bits each."""
    return _mix(_mix(np.uint64(key) + _GOLDEN * np.uint64(step + 1)) ^ np.uint64(voxel))


@nb.njit(cache=True, inline="always")
def _try_uniform(bits, attempt):
    """Uniform in (0, 1] at 16-bit resolution for try ``attempt`` (0..2) from ``_bits``."""
    return (np.float64((bits >> np.uint64(16 * attempt)) & np.uint64(0xFFFF)) + 1.0) * (1.0 / 65536.0)


@nb.njit(cache=True, inline="always")
def _offset(u, quirk):
    """Neighbour offset from a uniform: index in 0..26 decoded as base-3 digits minus 1.
    ``quirk`` reproduces the released kernel's floor(u * 27.9999), whose index 27 (3.6 % of the
    draws) decodes to (+2, -1, -1)."""
    index = int(u * 27.9999) if quirk else min(int(u * 27.0), 26)
    return index // 9 - 1, (index // 3) % 3 - 1, index % 3 - 1


@nb.njit(cache=True, inline="always")
def _gate(level, lower, u):
    """The paper's density gate: tissue levels lower / lower+20 / lower+40 accept with
    probability 1 / 0.3 / 0.1 (u in (0, 1])."""
    if level == lower:
        return True
    if level == lower + 20:
        return u <= 0.3
    return u <= 0.1


@nb.njit(cache=True)
def _spread(state, density, x, y, z, s, voxel, key, step, lower, outrange, threshold, gate_mode):
    """Up to 3 tries to add one cell to a random neighbour of (x, y, z) (own previous state s)."""
    n0, n1, n2 = state.shape
    quirk = gate_mode == GATE_RELEASED
    bits = _bits(key, step, voxel)
    for attempt in range(3):
        d0, d1, d2 = _offset(_try_uniform(bits, attempt), quirk)
        i, j, k = x + d0, y + d1, z + d2
        if i < 0 or j < 0 or k < 0 or i >= n0 or j >= n1 or k >= n2:
            continue
        t = state[i, j, k]
        if s >= threshold:
            if t > outrange + 2:  # pushed twice within this step: invaded, becomes tissue
                state[i, j, k] = 0
                density[i, j, k] = lower
                t = 0
            elif t >= outrange:  # pressure on the boundary, the try is spent
                state[i, j, k] = t + 1
                continue
        level = density[i, j, k]
        if level < lower or level >= outrange:
            continue
        if not quirk and not _gate(level, lower, uniform(key, step, voxel, 8 + attempt)):
            continue
        if t >= threshold or t < 0:
            continue
        state[i, j, k] = t + 1
        return


@nb.njit(cache=True)
def _saturated(state, x, y, z, outrange, threshold, quirk):
    """True when every neighbour a try could reach is full tumor (threshold <= t < outrange): then
    every try is refused, now and later (states only rise during growth), so the cell can be
    skipped without changing the result (its random numbers are its own)."""
    n0, n1, n2 = state.shape
    for i in range(max(x - 1, 0), min(x + 2, n0)):
        for j in range(max(y - 1, 0), min(y + 2, n1)):
            for k in range(max(z - 1, 0), min(z + 2, n2)):
                t = state[i, j, k]
                if t < threshold or t >= outrange:
                    return False
    if quirk and x + 2 < n0 and y >= 1 and z >= 1:
        t = state[x + 2, y - 1, z - 1]
        return threshold <= t < outrange
    return True


@nb.njit(cache=True, inline="always")
def _span(tile, n):
    """Voxel range [lo, hi) of tile index ``tile`` along an axis of ``n`` voxels."""
    return tile * TILE, min((tile + 1) * TILE, n)


@nb.njit(cache=True, inline="always")
def _box(tiles, t, shape):
    """Voxel bounds x0, x1, y0, y1, z0, z1 of tile ``tiles[t]``."""
    x0, x1 = _span(tiles[t, 0], shape[0])
    y0, y1 = _span(tiles[t, 1], shape[1])
    z0, z1 = _span(tiles[t, 2], shape[2])
    return x0, x1, y0, y1, z0, z1


@nb.njit(cache=True)
def _copy_active(state, prev, tiles):
    for t in range(tiles.shape[0]):
        x0, x1, y0, y1, z0, z1 = _box(tiles, t, state.shape)
        prev[x0:x1, y0:y1, z0:z1] = state[x0:x1, y0:y1, z0:z1]


# Each kernel writes out its tile/voxel loop: one shared numba generator yielding (t, x, y, z)
# made `tumorbench perf cellular` 1.9-3.3x slower (medium tumors 413 -> 1082 ms, same machine).
@nb.njit(cache=True)
def _grow_tiles(state, prev, density, done, tiles, key, step, lower, outrange, threshold, gate_mode):
    n0, n1, n2 = state.shape
    quirk = gate_mode == GATE_RELEASED
    for t in range(tiles.shape[0]):
        x0, x1, y0, y1, z0, z1 = _box(tiles, t, state.shape)
        for x in range(x0, x1):
            for y in range(y0, y1):
                for z in range(z0, z1):
                    s = prev[x, y, z]
                    if s <= 0 or s >= outrange or done[x, y, z]:
                        continue
                    if s >= threshold and _saturated(state, x, y, z, outrange, threshold, quirk):
                        done[x, y, z] = True
                        continue
                    if s < threshold:  # own growth (neighbours' additions this step are kept)
                        state[x, y, z] = min(state[x, y, z] + 1, threshold)
                    if s >= 5:
                        _spread(state, density, x, y, z, s, (x * n1 + y) * n2 + z, key, step,
                                lower, outrange, threshold, gate_mode)


@nb.njit(cache=True)
def _clamp_and_mark(state, done, tiles, live, outrange, death):
    """Clamp pressure to outrange+2 on the processed tiles and mark tiles holding cells that act
    next step (tumor cells 0 < s < outrange in growth; dead cells -1 in the death phase)."""
    live[:] = False
    for t in range(tiles.shape[0]):
        x0, x1, y0, y1, z0, z1 = _box(tiles, t, state.shape)
        for x in range(x0, x1):
            for y in range(y0, y1):
                for z in range(z0, z1):
                    s = state[x, y, z]
                    if s > outrange + 2:
                        state[x, y, z] = outrange + 2
                    elif (death and s == -1) or (not death and 0 < s < outrange and not done[x, y, z]):
                        live[tiles[t, 0], tiles[t, 1], tiles[t, 2]] = True


@nb.njit(cache=True)
def _dilate(live, active):
    """Tiles to process next, (k, 3) in raster order: every tile within one tile of a live one
    (a try reaches at most 2 voxels < TILE)."""
    t0, t1, t2 = live.shape
    active[:] = False
    for a in range(t0):
        for b in range(t1):
            for c in range(t2):
                if live[a, b, c]:
                    active[max(a - 1, 0):a + 2, max(b - 1, 0):b + 2, max(c - 1, 0):c + 2] = True
    return np.argwhere(active)


@nb.njit(cache=True)
def _kill_tiles(state, prev, tiles, key, step, threshold, quirk):
    """One death call: each dead cell makes up to 3 tries to kill one full (threshold) neighbour."""
    n0, n1, n2 = state.shape
    for t in range(tiles.shape[0]):
        x0, x1, y0, y1, z0, z1 = _box(tiles, t, state.shape)
        for x in range(x0, x1):
            for y in range(y0, y1):
                for z in range(z0, z1):
                    if prev[x, y, z] != -1:
                        continue
                    bits = _bits(key, step, (x * n1 + y) * n2 + z)
                    for attempt in range(3):
                        d0, d1, d2 = _offset(_try_uniform(bits, attempt), quirk)
                        i, j, k = x + d0, y + d1, z + d2
                        if 0 <= i < n0 and 0 <= j < n1 and 0 <= k < n2 and state[i, j, k] == threshold:
                            state[i, j, k] = -1
                            break


@nb.njit(cache=True)
def _tile_grid(shape):
    """(live, active) tile flags for a volume of ``shape``."""
    tiles = ((shape[0] + TILE - 1) // TILE, (shape[1] + TILE - 1) // TILE, (shape[2] + TILE - 1) // TILE)
    return np.zeros(tiles, np.bool_), np.zeros(tiles, np.bool_)


@nb.njit(cache=True)
def run_growth(state, density, seeds, key, steps, lower, outrange, threshold, gate_mode):
    """``steps + 1`` growth calls (as the released loop) on ``state``/``density`` in place; the
    only tumor cells at the start are the (k, 3) ``seeds``."""
    live, active = _tile_grid(state.shape)
    prev = np.empty_like(state)
    done = np.zeros(state.shape, np.bool_)  # full cells surrounded by full cells: nothing left to do
    for seed in seeds:
        live[seed[0] // TILE, seed[1] // TILE, seed[2] // TILE] = True
    for step in range(steps + 1):
        tiles = _dilate(live, active)
        _copy_active(state, prev, tiles)
        _grow_tiles(state, prev, density, done, tiles, key, step, lower, outrange, threshold, gate_mode)
        _clamp_and_mark(state, done, tiles, live, outrange, False)


@nb.njit(cache=True)
def run_death(state, key, calls, outrange, threshold, gate_mode):
    """``calls`` death calls on ``state`` in place (dead cells already seeded as -1)."""
    live, active = _tile_grid(state.shape)
    prev = np.empty_like(state)
    done = np.zeros((1, 1, 1), np.bool_)  # unused in the death phase
    _clamp_and_mark(state, done, np.argwhere(~active), live, outrange, True)
    for step in range(calls):
        tiles = _dilate(live, active)
        _copy_active(state, prev, tiles)
        _kill_tiles(state, prev, tiles, key, 1_000_000 + step, threshold, gate_mode == GATE_RELEASED)
        _clamp_and_mark(state, done, tiles, live, outrange, True)


@nb.njit(cache=True)
def initial_state(ct, organ, lower, outrange):
    """(state, density) int32 in one pass: tissue (organ, HU < outrange) is state 0 at density
    lower / lower+20 / lower+40 by HU (steps of (outrange - lower) / 3 = 20); vessels and
    everything outside the organ are boundary (state and density outrange)."""
    state = np.empty(ct.shape, np.int32)
    density = np.empty(ct.shape, np.int32)
    for x in range(ct.shape[0]):
        for y in range(ct.shape[1]):
            for z in range(ct.shape[2]):
                hu = ct[x, y, z]
                if organ[x, y, z] and hu < outrange:
                    state[x, y, z] = 0
                    density[x, y, z] = lower if hu < lower + 20 else (lower + 20 if hu < lower + 40 else lower + 40)
                else:
                    state[x, y, z] = outrange
                    density[x, y, z] = outrange
    return state, density
