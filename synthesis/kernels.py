"""Compiled (numba) inner loops of the Hu texture and blend: banded filters, the salt grid's
binomial draws, and the per-box blur + darkening.

A tumor box is small (a tiny tumor's is ~20^3 voxels), so the numpy version spent most of its
time in per-call overhead and temporaries; these loops do the same arithmetic in one pass each.
Every kernel is a plain function of arrays (no randomness, no I/O); ``cache=True`` keeps the
compiled code on disk, so only the first use on a machine pays the compilation (~seconds).
Shape kernels (deformation, organ slices) are in ``shape_kernels.py``.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def band_apply(field, axis, starts, weights, widths, col0):
    """``out = M @ field`` along ``axis`` for a banded M (row o: ``weights[o, :widths[o]]`` in
    columns ``starts[o]...``, zero elsewhere); ``field`` holds columns ``col0...`` of M's input
    (the others are zero). field: float32 3D; returns float32 3D. Axis 0 or 1 only: a sum
    along the contiguous axis does not vectorise, so callers filter the transpose instead."""
    n_out, n_in = starts.shape[0], field.shape[axis]
    shape = field.shape
    lo = np.empty(n_out, np.int64)  # per row, the taps that fall on the given columns
    hi = np.empty(n_out, np.int64)
    for o in range(n_out):
        lo[o] = max(0, col0 - starts[o])
        hi[o] = min(widths[o], col0 + n_in - starts[o])
    if axis == 0:  # whole planes: the inner loops run over contiguous memory
        out = np.zeros((n_out, shape[1], shape[2]), np.float32)
        for o in range(n_out):
            for t in range(lo[o], hi[o]):
                w = weights[o, t]
                src = field[starts[o] + t - col0]
                for j in range(shape[1]):
                    for k in range(shape[2]):
                        out[o, j, k] += w * src[j, k]
    elif axis == 1:
        out = np.zeros((shape[0], n_out, shape[2]), np.float32)
        for i in range(shape[0]):
            for o in range(n_out):
                for t in range(lo[o], hi[o]):
                    w = weights[o, t]
                    s = starts[o] + t - col0
                    for k in range(shape[2]):
                        out[i, o, k] += w * field[i, s, k]
    else:
        raise ValueError("band_apply: axis must be 0 or 1 (transpose for the last axis)")
    return out


@njit(cache=True, nogil=True)
def gaussian_band_arrays(n, sigma, truncate):
    """(starts, widths, float32 weights) of scipy's gaussian_filter1d (mode reflect, radius
    int(truncate * sigma + 0.5)) on length-n lines; reflected taps fold into the band."""
    radius = int(truncate * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    starts = np.empty(n, np.int64)
    widths = np.empty(n, np.int64)
    weights = np.zeros((n, min(n, 2 * radius + 1)), np.float64)
    for o in range(n):
        starts[o] = max(0, o - radius)
        widths[o] = min(n - 1, o + radius) - starts[o] + 1
        for t in range(2 * radius + 1):
            src = (o + t - radius) % (2 * n)  # reflect: d c b a | a b c d | d c b a
            if src >= n:
                src = 2 * n - 1 - src
            weights[o, src - starts[o]] += taps[t]
    return starts, widths, weights.astype(np.float32)


CHUNK = 256  # cells inverted side by side (L1-resident): the same steps for each, so loops vectorise


@njit(cache=True, nogil=True)
def binomial_inversion(u, p, n):
    """Binomial(n, p[c]) per cell by CDF inversion of the uniform ``u[c]`` (1D arrays):
    X = #{k < n : CDF(k) < u} (the CDF only grows, so this is where a sequential search stops).

    All n CDF steps are taken for every cell, ``CHUNK`` cells at a time and without branches,
    in float32 (8 cells per vector op; the CDF's rounding, ~1e-7, moves ~1e-5 of the draws to a
    neighbouring count): for the salt grid's small n (8..27 voxels a cell) that beats stopping
    early.
    """
    size = p.shape[0]
    out = np.zeros(size, np.int32)
    step = np.empty(n + 1, np.float32)  # pmf(k + 1) / pmf(k) = ratio * (n - k) / (k + 1)
    for k in range(n + 1):
        step[k] = (n - k) / (k + 1)
    ratio, pmf, cdf = np.empty(CHUNK, np.float32), np.empty(CHUNK, np.float32), np.empty(CHUNK, np.float32)
    power, count, uniform = np.empty(CHUNK, np.float32), np.empty(CHUNK, np.float32), np.empty(CHUNK, np.float32)
    one = np.float32(1.0)
    for c0 in range(0, size, CHUNK):
        m = min(CHUNK, size - c0)
        for c in range(m):
            q = one - np.float32(p[c0 + c])
            ratio[c] = np.float32(p[c0 + c]) / q
            power[c] = q
            pmf[c] = one
            count[c] = 0.0
            uniform[c] = u[c0 + c]  # a local copy: the step loop then vectorises
        exponent = n  # pmf(0) = q**n by squaring (libm's pow costs more than the inversion)
        while exponent:
            if exponent & 1:
                for c in range(m):
                    pmf[c] *= power[c]
            for c in range(m):
                power[c] *= power[c]
            exponent >>= 1
        for c in range(m):
            cdf[c] = pmf[c]
        for k in range(n):
            factor = step[k]
            for c in range(m):
                count[c] += np.float32(uniform[c] > cdf[c])
                pmf[c] *= ratio[c] * factor
                cdf[c] += pmf[c]
        for c in range(m):
            out[c0 + c] = np.int32(count[c])
    return out


@njit(cache=True, nogil=True)
def _blur_mask_last_axis(tumor, inner_lo, inner_hi, starts, weights, widths):
    """Gaussian band of a binary mask along its last axis, on the rows of the tumor's own box:
    a row's ones come in a few runs, so each output sums run slices of the row's prefix-summed
    weights instead of every tap. Returns float32 (n_i, n_j, n_out) over the inner i, j."""
    n_out = starts.shape[0]
    cumulative = np.zeros((n_out, weights.shape[1] + 1), np.float32)
    reach = 0  # row o only reads columns o - reach .. o + reach
    for o in range(n_out):
        reach = max(reach, o - starts[o], starts[o] + widths[o] - 1 - o)
        for t in range(widths[o]):
            cumulative[o, t + 1] = cumulative[o, t] + weights[o, t]
    out = np.zeros((inner_hi[0] - inner_lo[0], inner_hi[1] - inner_lo[1], n_out), np.float32)
    for i in range(inner_lo[0], inner_hi[0]):
        for j in range(inner_lo[1], inner_hi[1]):
            row, line = tumor[i, j], out[i - inner_lo[0], j - inner_lo[1]]
            k = inner_lo[2]
            while k < inner_hi[2]:
                if not row[np.uint64(k)]:  # unsigned: no negative-index check
                    k += 1
                    continue
                run_start = k
                while k < inner_hi[2] and row[np.uint64(k)]:
                    k += 1
                for o in range(max(0, run_start - reach), min(n_out, k + reach)):  # rows that see the run
                    a = min(max(run_start - starts[o], 0), widths[o])
                    b = min(max(k - starts[o], 0), widths[o])
                    line[o] += cumulative[o, b] - cumulative[o, a]
    return out


@njit(cache=True, nogil=True)
def blend_box(ct_box, organ_box, tumor, inner_lo, inner_hi, bands, texture, gain, difference, exophytic,
              reference_hu):
    """Change one blend box in place, b = the Gaussian of the tumor mask (scipy's reflect at the box
    edges), value = ``clip(texture * gain, 0, 1)``: on organ voxels darken, ``ct -= value * b *
    difference`` (the reference); outside the organ, when ``exophytic``, move towards tumor tissue,
    ``ct += b * (reference_hu - value * difference - ct)`` (a convex blend: never darker than the
    tissue or the tumor). ``organ_box``: the organ mask, or for an exophytic tumor the region of
    ``synthesis.exophytic`` (1 organ, 2 replaceable outside it, 0 never changed). Spares the full
    blurred array: the last pass changes each plane as soon as it is done. ``bands``: per axis (starts, weights, widths)."""
    n0, n1, n2 = tumor.shape
    # axis 2 on the tumor's own rows, then axis 1 on the tumor's i range, then axis 0 plane by plane
    step2 = _blur_mask_last_axis(tumor, inner_lo, inner_hi, bands[2][0], bands[2][1], bands[2][2])
    step1 = band_apply(step2, 1, bands[1][0], bands[1][1], bands[1][2], inner_lo[1])
    starts, weights, widths = bands[0]
    plane = np.empty((n1, n2), np.float32)
    for o in range(n0):
        plane[:, :] = 0.0
        for t in range(max(0, inner_lo[0] - starts[o]), min(widths[o], inner_hi[0] - starts[o])):
            w = weights[o, t]
            src = step1[starts[o] + t - inner_lo[0]]
            for j in range(n1):
                for k in range(n2):
                    plane[j, k] += w * src[j, k]
        for j in range(n1):
            for k in range(n2):
                b = plane[j, k]
                if b == 0.0:
                    continue
                region = organ_box[o, j, k]
                inside = region == 1 if exophytic else region != 0
                if inside or (exophytic and region == 2):
                    value = min(max(texture[o, j, k] * gain, np.float32(0.0)), np.float32(1.0))
                    if inside:
                        ct_box[o, j, k] -= value * b * difference
                    else:
                        ct_box[o, j, k] += b * (reference_hu - value * difference - ct_box[o, j, k])
