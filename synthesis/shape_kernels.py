"""Compiled (numba) inner loops of the tumor geometry: the composed elastic deformation of an
ellipsoid, tumor-centre candidates on an organ slice, the organ scan and the clip to the organ.

Same conventions as ``kernels.py``: plain functions of arrays, compiled once and cached on disk.
Each reproduces a straightforward numpy/scipy computation exactly (tests compare them).
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _window_min(term, x, half, centre, pad):
    """min(term[x - half : x + half + 1]) for a padded ((x - centre) / r)^2 table (inf outside
    the canvas): the window's point nearest the centre."""
    if x + half < centre:
        return term[x + half + pad]
    if x - half > centre:
        return term[x - half + pad]
    return np.float32(0.0)


@njit(cache=True, nogil=True)
def _j_interval(a, c, half1, lo1, hi1, term1, centre1, pad):
    """The j in [lo1, hi1) where (a + m1(j)) + c <= 1, m1 = the window minimum of term1 over
    +-half1: m1 = 0 on [centre - half1, centre + half1] and grows outwards (a valley), so the
    interval is grown outwards from there."""
    one = np.float32(1.0)
    j0 = min(max(centre1 - half1, lo1), hi1)
    j1 = max(min(centre1 + half1 + 1, hi1), j0)
    while j0 > lo1 and (a + _window_min(term1, j0 - 1, half1, centre1, pad)) + c <= one:
        j0 -= 1
    while j1 < hi1 and (a + _window_min(term1, j1, half1, centre1, pad)) + c <= one:
        j1 += 1
    return j0, j1


@njit(cache=True, nogil=True)
def follow_deformation(lo, hi, centre, d02a, d02b, d12a_t, d12b_t, d01a, d01b, terms, inside, reach, pad):
    """Voxels of ``lo..hi`` (canvas coordinates) whose composed three-plane map lands in the
    ellipsoid: out[p] = E(D01(D12(D02(p)))) with integer displacement tables (see elastic.py).

    ``terms[a]``/``inside[a]``: per-axis ellipsoid terms ((x - c) / r)^2 (inf outside the canvas)
    and in-canvas flags, padded by ``pad``. ``reach``: (|d01a| max per row, |d01b| max per row,
    |d12a| max per column, |d12b| max per column): after the (0,2) map, a column (i, k) can
    only move by those, so a voxel whose window minima give (m0 + m1) + m2 > 1 cannot be
    inside (float sums are monotone); m1 is a valley in j, so each column visits one j
    interval. The float32 sum is formed in the same order as the numpy reference, so the voxel
    set is identical. j is the inner loop, so the (1,2) tables come transposed (``d12a_t[k, j]``)
    (the result is written in (i, j, k) order all the same: a transposed copy costs more).
    Returns (mask, first): the mask cropped to the voxels inside and its first corner.
    """
    n0, n1, n2 = d01a.shape[0], d01a.shape[1], d12a_t.shape[0]
    out = np.zeros((hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]), np.bool_)
    first, last = hi.copy(), lo - 1  # extent of the voxels inside
    one = np.float32(1.0)
    for i in range(lo[0], hi[0]):
        for k in range(lo[2], hi[2]):
            qi = i + d02a[i, k]
            qk = k + d02b[i, k]
            if not (inside[0][qi + pad] and inside[2][qk + pad]):
                continue
            ck = min(max(qk, 0), n2 - 1)
            ci = min(max(qi, 0), n0 - 1)
            a = _window_min(terms[0], qi, reach[0][ci], centre[0], pad)
            c = _window_min(terms[2], qk, reach[3][ck], centre[2], pad)
            if a + c > one:  # even the window minimum 0 of m1 fails
                continue
            j0, j1 = _j_interval(a, c, reach[1][ci] + reach[2][ck], lo[1], hi[1], terms[1], centre[1], pad)
            d12a_k, d12b_k, d01a_i, d01b_i = d12a_t[ck], d12b_t[ck], d01a[ci], d01b[ci]
            t0, t1, t2, in1 = terms[0], terms[1], terms[2], inside[1]
            # unsigned indices (all are >= 0 here): numba then skips its negative-index checks
            for uj in range(np.uint64(j0), np.uint64(j1)):
                j = np.int64(uj)
                qj = j + d12a_k[uj]
                if not in1[np.uint64(qj + pad)]:
                    continue
                cj = np.uint64(min(max(qj, 0), n1 - 1))
                total = t0[np.uint64(qi + pad + d01a_i[cj])] + t1[np.uint64(qj + pad + d01b_i[cj])]
                if total + t2[np.uint64(qk + pad + d12b_k[uj])] <= one:
                    out[i - lo[0], j - lo[1], k - lo[2]] = True
                    first[0], last[0] = min(first[0], i), max(last[0], i)
                    first[1], last[1] = min(first[1], j), max(last[1], j)
                    first[2], last[2] = min(first[2], k), max(last[2], k)
    # crop to what was hit: the box allows the largest displacement everywhere
    first, last = np.minimum(first, last), np.maximum(last, first - 1)
    return out[first[0] - lo[0]:last[0] + 1 - lo[0], first[1] - lo[1]:last[1] + 1 - lo[1],
               first[2] - lo[2]:last[2] + 1 - lo[2]], first


@njit(cache=True, nogil=True)
def _axis_tables(n, centre, radius, pad):
    """Padded ((x - centre) / radius)^2 (float32, inf outside the canvas) and in-canvas flags,
    computed as numpy does (float64 square, then float32)."""
    terms = np.full(n + 2 * pad, np.inf, np.float32)
    inside = np.zeros(n + 2 * pad, np.bool_)
    for x in range(n):
        t = (x - centre) / radius
        terms[x + pad] = np.float32(t * t)
        inside[x + pad] = True
    return terms, inside


@njit(cache=True, nogil=True)
def _abs_max(table, axis):
    """max |table| along ``axis`` of a 2D int32 table."""
    out = np.zeros(table.shape[1 - axis], np.int64)
    for a in range(table.shape[0]):
        for b in range(table.shape[1]):
            v = abs(table[a, b])
            x = b if axis == 0 else a
            if v > out[x]:
                out[x] = v
    return out


@njit(cache=True, nogil=True)
def deformed_mask(f01, f12, f02, radii):
    """The elastically deformed ellipsoid on its canvas (see elastic.deformed_ellipsoid).

    f01, f12, f02: float32 (2, n_a, n_b) displacement fields of the planes (0,1), (1,2), (0,2);
    radii: (3,) semi-axes in voxels. Returns (mask, first): the mask on its tight box (empty if
    nothing is inside) and the box's first voxel in canvas coordinates.
    """
    canvas = np.array([f01.shape[1], f01.shape[2], f12.shape[2]])
    centre = canvas // 2
    # rint(q + d) == q + rint(d) for integer q: integer displacement tables, no float work per voxel
    d01, d12, d02 = np.rint(f01).astype(np.int32), np.rint(f12).astype(np.int32), np.rint(f02).astype(np.int32)
    reach = np.zeros(3, np.int64)
    for field, a, b in ((d01, 0, 1), (d12, 1, 2), (d02, 0, 2)):
        reach[a] += np.abs(field[0]).max()
        reach[b] += np.abs(field[1]).max()
    pad = reach.max() + 1
    lo, hi = np.empty(3, np.int64), np.empty(3, np.int64)
    for a in range(3):
        extent = int(np.ceil(radii[a]))
        lo[a] = max(centre[a] - extent - reach[a] - 1, 0)
        hi[a] = min(centre[a] + extent + reach[a] + 2, canvas[a])
    t0, in0 = _axis_tables(canvas[0], centre[0], radii[0], pad)
    t1, in1 = _axis_tables(canvas[1], centre[1], radii[1], pad)
    t2, in2 = _axis_tables(canvas[2], centre[2], radii[2], pad)
    # after the (0,2) map, column (i, k) moves by at most these (see follow_deformation)
    reach_tables = (_abs_max(d01[0], 1), _abs_max(d01[1], 1), _abs_max(d12[0], 0), _abs_max(d12[1], 0))
    return follow_deformation(lo, hi, centre, d02[0], d02[1], np.ascontiguousarray(d12[0].T),
                              np.ascontiguousarray(d12[1].T), d01[0], d01[1], (t0, t1, t2), (in0, in1, in2),
                              reach_tables, pad)


@njit(cache=True, nogil=True)
def _spline_field(left, control, right):
    """float32 (2, n_a, n_b) = left @ control[c] @ right.T for c = 0, 1 (float64 sums)."""
    out = np.empty((2, left.shape[0], right.shape[0]), np.float32)
    for c in range(2):
        inner = left @ control[c]  # (n_a, points)
        for x in range(left.shape[0]):
            for y in range(right.shape[0]):
                total = 0.0
                for q in range(right.shape[1]):
                    total += inner[x, q] * right[y, q]
                out[c, x, y] = total
    return out


@njit(cache=True, nogil=True)
def plane_fields(controls, sigma, spline0, spline1, spline2):
    """Displacement fields of the planes (0,1), (1,2), (0,2) from standard-normal control
    points (3, 2, p, p): control[plane][c] * sigma of the plane's c-th axis, upsampled with the
    per-axis cubic-spline matrices (n_axis, p)."""
    splines = (spline0, spline1, spline2)
    planes = ((0, 1), (1, 2), (0, 2))
    fields = []
    for index in range(3):
        a, b = planes[index]
        control = controls[index].copy()
        control[0] *= sigma[a]
        control[1] *= sigma[b]
        fields.append(_spline_field(splines[a], control, splines[b]))
    return fields[0], fields[1], fields[2]


@njit(cache=True, nogil=True)
def _line_erosion(keep, half, axis):
    """AND of ``keep`` over a centred line of 2*half+1 voxels along ``axis`` of a 2D array,
    outside the array counting as True: prefix counts of False, row by row (contiguous)."""
    rows, cols = keep.shape
    out = np.empty_like(keep)
    if axis == 0:
        falses = np.zeros((rows + 1, cols), np.int32)
        for r in range(rows):
            for c in range(cols):
                falses[r + 1, c] = falses[r, c] + (not keep[r, c])
        for r in range(rows):
            top, bottom = falses[min(rows, r + half + 1)], falses[max(0, r - half)]
            for c in range(cols):
                out[r, c] = top[c] == bottom[c]
    else:
        falses = np.zeros((rows, cols + 1), np.int32)
        for r in range(rows):
            for c in range(cols):
                falses[r, c + 1] = falses[r, c] + (not keep[r, c])
        for c in range(cols):  # column by column: the window bounds are fixed per column
            right, left = min(cols, c + half + 1), max(0, c - half)
            for r in range(rows):
                out[r, c] = falses[r, right] == falses[r, left]
    return out


@njit(cache=True, nogil=True)
def plane_candidates(plane, half0, half1):
    """C-order flat indices of the non-zero voxels of a 2D plane that stay after erosion by a
    (2*half0+1) x (2*half1+1) rectangle with the outside counting as organ (cv2.erode's
    border); half0 = half1 = 0: no erosion."""
    keep = np.empty(plane.shape, np.bool_)
    for r in range(plane.shape[0]):
        for c in range(plane.shape[1]):
            keep[r, c] = plane[r, c] != 0
    if half0 > 0:
        keep = _line_erosion(keep, half0, 0)
    if half1 > 0:
        keep = _line_erosion(keep, half1, 1)
    flat = keep.ravel()
    out = np.empty(np.count_nonzero(flat), np.int64)
    n = 0
    for index in range(flat.size):
        if flat[index]:
            out[n] = index
            n += 1
    return out


@njit(cache=True, nogil=True)
def mask_projections(planes):
    """One memory-bound pass over a (n0, m) uint8 view of a C-ordered 3D mask: per plane the OR
    of its bytes (non-zero: the plane holds mask voxels) and the OR of all planes (m,)."""
    rows = np.zeros(planes.shape[0], np.uint8)
    union = np.zeros(planes.shape[1], np.uint8)
    for i in range(planes.shape[0]):
        found = np.uint8(0)
        for x in range(planes.shape[1]):  # plain byte ORs: the loop vectorises
            value = planes[i, x]
            union[x] |= value
            found |= value
        rows[i] = found
    return rows, union


@njit(cache=True, nogil=True)
def clip_extent(mask, organ, clip):
    """Intersect a bool mask with ``organ != 0`` in place (if ``clip``) and return the inclusive
    (lo, hi) bounds of what is left (lo > hi when nothing is)."""
    lo = np.array([mask.shape[0], mask.shape[1], mask.shape[2]])
    hi = np.array([-1, -1, -1])
    for i in range(mask.shape[0]):
        for j in range(mask.shape[1]):
            for k in range(mask.shape[2]):
                if mask[i, j, k]:
                    if clip and organ[i, j, k] == 0:
                        mask[i, j, k] = False
                        continue
                    lo[0], hi[0] = min(lo[0], i), max(hi[0], i)
                    lo[1], hi[1] = min(lo[1], j), max(hi[1], j)
                    lo[2], hi[2] = min(lo[2], k), max(hi[2], k)
    return lo, hi


@njit(cache=True, nogil=True)
def first_candidate(plane, half0, half1, rows, cols):
    """Index of the first probe (rows[t], cols[t]) that is a candidate of ``plane_candidates``
    (non-zero and, with the outside counting as organ, its whole rectangle too), or -1."""
    for t in range(rows.shape[0]):
        r, c = rows[t], cols[t]
        ok = True
        for rr in range(max(0, r - half0), min(plane.shape[0], r + half0 + 1)):
            for cc in range(max(0, c - half1), min(plane.shape[1], c + half1 + 1)):
                if plane[rr, cc] == 0:
                    ok = False
                    break
            if not ok:
                break
        if ok:
            return t
    return -1
