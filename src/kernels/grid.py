"""The bilateral grid's per-pixel kernels, compiled with numba: the same toolkit as :mod:`src.kernels.compact`.

Algorithm and schedule apart, as in Halide and HDRNet: :class:`~src.models.bilateral_grid.BilateralGridNet` (torch)
defines each pixel (``shrink``, ``bin_stats``, ``apply``); these are one schedule of its full-resolution work, in
three passes over the image:

- :func:`box_down`: the stream's input, box-averaged from uint8 (integer sums), written channels-last;
- :func:`bin_stats`: each pixel's guide (computed here once), splatted into its cell's two nearest bins; written
  channels-last for the stream, with each pixel's bin coordinate kept for the slice;
- :func:`slice_affine`: per output row the grid's two nearest cell rows blended once (a row of ``GW x D x K``
  coefficients that stays in L2), then per pixel four runs of ``K`` contiguous coefficients (the x and bin
  corners) instead of eight, and the affine transform, clamped, written once pixel-major.

Compiled on first use and cached on disk (``cache=True``). Parity tests hold each to its torch twin at every size
from 1x1 up, tiled and whole.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

# Cached on disk; a*b+c may fuse; division by zero gives inf as in numpy instead of raising: numba's check for the
# raise is a branch in the loop, which stopped the guide's sigmoid from vectorising (8x slower).
KERNEL = dict(cache=True, fastmath={"contract"}, error_model="numpy")


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose IEEE bits are the int32 ``bits`` (a bit cast: no call, so loops around it vectorise)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@njit(inline="always", **KERNEL)
def _exp32(x):
    """``exp(x)`` in float32 to about 1 ulp (Cephes ``expf``: ``2**n`` times a degree-5 polynomial on
    ``|r| <= ln 2 / 2``) without a libm call: numba has no vector ``exp`` here (no SVML), and one scalar call per
    pixel was a third of the guide's time. Clamped to the float32 range (the sigmoid only needs it finite)."""
    x = min(max(x, np.float32(-87.0)), np.float32(88.0))
    n = np.floor(x * np.float32(1.44269504088896341) + np.float32(0.5))
    r = x - n * np.float32(0.693359375) + n * np.float32(2.12194440e-4)
    p = np.float32(1.9875691500e-4) * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    return (p * r * r + r + np.float32(1.0)) * _float32_from_bits((np.int32(n) + np.int32(127)) << np.int32(23))


@njit(parallel=True, **KERNEL)
def box_down(rgb, down, out):
    """The grid stream's input from uint8 in one pass: ``rgb`` / 255, replicate-padded on the bottom and right to
    ``out``'s size times ``down``, averaged over ``down`` x ``down`` boxes into ``out`` ``(oh, ow, 3)`` float32
    (channels-last). The torch twin is :meth:`~src.models.bilateral_grid.BilateralGridNet.shrink` (``F.pad`` +
    ``F.avg_pool2d``); integer sums are exact, so the two differ by float32 rounding only."""
    h, w = rgb.shape[0], rgb.shape[1]
    oh, ow = out.shape[0], out.shape[1]
    scale = np.float32(1.0 / (255.0 * down * down))
    for oy in prange(oh):
        acc = np.zeros((ow, 3), np.int64)
        for dy in range(down):
            y = min(oy * down + dy, h - 1)
            for ox in range(ow):
                for dx in range(down):
                    x = min(ox * down + dx, w - 1)
                    acc[ox, 0] += rgb[y, x, 0]
                    acc[ox, 1] += rgb[y, x, 1]
                    acc[ox, 2] += rgb[y, x, 2]
        for ox in range(ow):
            for c in range(3):
                out[oy, ox, c] = np.float32(acc[ox, c]) * scale


@njit(inline="always", **KERNEL)
def _pixels_row(rgb, y, rr, gg, bl):
    """Row ``y``'s pixels as floats in [0, 1] in ``rr, gg, bl``."""
    inv = np.float32(1.0 / 255.0)
    for x in range(rgb.shape[1]):
        rr[x] = np.float32(rgb[y, x, 0]) * inv
        gg[x] = np.float32(rgb[y, x, 1]) * inv
        bl[x] = np.float32(rgb[y, x, 2]) * inv


@njit(inline="always", **KERNEL)
def _guide_row(w1, b1, w2, b2, depth, rr, gg, bl, zz):
    """Each pixel's bin coordinate in ``zz`` from its colour in ``rr, gg, bl``: the guide (1x1 layer, ReLU, 1x1
    layer, sigmoid) times ``depth`` bins, less a half, clamped to ``[0, depth - 1]``."""
    zero, one, half, top = np.float32(0.0), np.float32(1.0), np.float32(0.5), np.float32(depth - 1)
    zz[:] = b2[0]
    for j in range(w1.shape[0]):  # vectorised over the row
        c0, c1, c2, cb, cw = w1[j, 0], w1[j, 1], w1[j, 2], b1[j], w2[0, j]
        for x in range(zz.shape[0]):
            zz[x] += cw * max(cb + c0 * rr[x] + c1 * gg[x] + c2 * bl[x], zero)
    for x in range(zz.shape[0]):
        zz[x] = min(max(one / (one + _exp32(-zz[x])) * np.float32(depth) - half, zero), top)


@njit(parallel=True, **KERNEL)
def bin_stats(rgb, w1, b1, w2, b2, cell, out, zmap):
    """The twin of :meth:`~src.models.bilateral_grid.BilateralGridNet.bin_stats` in one pass: each pixel's guide,
    its colour and a count added to its cell's two nearest bins (tent weights), then means and shares, into ``out``
    ``(GH, GW, 4 * D)`` float32, channels-last (channel ``c * D + z``: R, G, B means, then shares; ``out`` may be
    a view into a wider array). Each pixel's bin coordinate goes to ``zmap`` ``(h, w)`` for :func:`slice_affine`
    (a ``(0, 0)`` array: not kept). Threads take whole cell rows: no two write one cell."""
    h, w = rgb.shape[0], rgb.shape[1]
    GH, GW, D = out.shape[0], out.shape[1], out.shape[2] // 4
    one, zero = np.float32(1.0), np.float32(0.0)
    keep = zmap.shape[0] > 0
    column = np.empty(w, np.uint64)  # each column's first accumulator: cell-major (GW, D + 1, 4)
    for x in range(w):
        column[x] = np.uint64((x // cell) * (D + 1) * 4)
    for gy in prange(GH):
        # per cell and bin: R, G, B and count summed; bin D takes a top bin's upper neighbour, weight 0 (no clamp)
        acc = np.zeros(GW * (D + 1) * 4, np.float32)
        rr, gg, bl, zz = np.empty(w, np.float32), np.empty(w, np.float32), np.empty(w, np.float32), np.empty(w, np.float32)
        for y in range(gy * cell, min((gy + 1) * cell, h)):
            _pixels_row(rgb, y, rr, gg, bl)
            _guide_row(w1, b1, w2, b2, D, rr, gg, bl, zz)
            if keep:
                zmap[y] = zz
            for x in range(w):
                z0 = np.uint64(zz[x])
                wz = zz[x] - np.float32(z0)
                lo = column[x] + z0 * np.uint64(4)
                hi = lo + np.uint64(4)
                r, g, b, q = rr[x], gg[x], bl[x], one - wz
                acc[lo] += r * q
                acc[lo + np.uint64(1)] += g * q
                acc[lo + np.uint64(2)] += b * q
                acc[lo + np.uint64(3)] += q
                acc[hi] += r * wz
                acc[hi + np.uint64(1)] += g * wz
                acc[hi + np.uint64(2)] += b * wz
                acc[hi + np.uint64(3)] += wz
        sums, area = acc.reshape(GW, D + 1, 4), np.float32(cell * cell)
        for gx in range(GW):
            for z in range(D):
                n = sums[gx, z, 3]
                for c in range(3):
                    out[gy, gx, c * D + z] = sums[gx, z, c] / n if n > zero else zero
                out[gy, gx, 3 * D + z] = n / area


@njit(**KERNEL)
def _grid_row(features, gy, weight, bias, dst):
    """Cell row ``gy`` of the grid into ``dst``: per cell ``bias + features[gy, gx] @ weight`` (the stream's last
    1x1 layer), ``GW * D * K`` coefficients cell-major. Width 16 (the default) has its own loop: a constant inner
    trip count lets LLVM unroll it and vectorise over the outputs (2.6x the generic loop)."""
    n, F = bias.shape[0], features.shape[2]
    for gx in range(features.shape[1]):
        cell, fr = dst[gx * n : (gx + 1) * n], features[gy, gx]
        if F == 16:
            for j in range(n):
                acc = bias[j]
                for c in range(16):
                    acc += fr[c] * weight[c, j]
                cell[j] = acc
        else:
            cell[:] = bias
            for c in range(F):
                f, wc = fr[c], weight[c]
                for j in range(n):
                    cell[j] += f * wc[j]


@njit(inline="always", **KERNEL)
def _slice_row(row, rr, gg, bl, zz, xs0, xs1, wxs, K, out_row):
    """One output row: per pixel four runs of K coefficients from ``row`` (the x and bin corners; ``zz`` the bin
    coordinates, ``xs0, xs1, wxs`` the columns' cells and weights), then the affine transform, clamped."""
    one, zero, k1 = np.float32(1.0), np.float32(0.0), np.uint64(K)
    w, C = out_row.shape[0], out_row.shape[1]
    left, right = np.empty(w, np.uint64), np.empty(w, np.uint64)
    for x in range(w):  # vectorised: each pixel's two runs at its lower bin; the upper bin's start K later
        z0 = np.uint64(zz[x])
        zz[x] -= np.float32(z0)
        left[x], right[x] = xs0[x] + z0 * k1, xs1[x] + z0 * k1
    for x in range(w):
        wz, wx, i0, i1 = zz[x], wxs[x], left[x], right[x]
        p00, p01, p10, p11 = (one - wx) * (one - wz), (one - wx) * wz, wx * (one - wz), wx * wz
        j0, j1 = i0 + k1, i1 + k1
        r, g, b = rr[x], gg[x], bl[x]
        for c in range(C):
            u = np.uint64(4 * c)
            a0 = row[i0 + u] * p00 + row[j0 + u] * p01 + row[i1 + u] * p10 + row[j1 + u] * p11
            u += np.uint64(1)
            a1 = row[i0 + u] * p00 + row[j0 + u] * p01 + row[i1 + u] * p10 + row[j1 + u] * p11
            u += np.uint64(1)
            a2 = row[i0 + u] * p00 + row[j0 + u] * p01 + row[i1 + u] * p10 + row[j1 + u] * p11
            u += np.uint64(1)
            a3 = row[i0 + u] * p00 + row[j0 + u] * p01 + row[i1 + u] * p10 + row[j1 + u] * p11
            out_row[x, c] = min(max(a0 * r + a1 * g + a2 * b + a3, zero), one)


@njit(parallel=True, **KERNEL)
def slice_affine(rgb, features, weight, bias, depth, w1, b1, w2, b2, zmap, out, row_off, col_off, full_h, full_w, chunks):
    """:class:`~src.models.bilateral_grid.BilateralGridNet`'s full-resolution work in one pass, clamped to [0, 1]:
    per pixel the guide, the trilinear lookup of the grid at (x, y, guide) and the affine transform of the pixel,
    into ``out`` ``(h, w, C)``. ``rgb`` is a tile at (``row_off``, ``col_off``) of an image whose grid spans
    ``full_h`` x ``full_w`` pixels; ``zmap``: the tile's bin coordinates kept by :func:`bin_stats` (the guide is
    then not computed twice), or a ``(0, 0)`` array. The torch twin is ``net.apply`` +
    :func:`~src.models.bilateral_grid.slice_grid`.

    The grid arrives factored: ``features`` ``(GH, GW, F)``, each cell's stream features, and the stream's last
    1x1 layer (``weight`` ``(F, depth * K)``, ``bias``), so the grid itself (3 floats a pixel at 8-px cells) is
    never stored. Schedule: ``chunks`` runs of rows, one per task; each computes the grid's cell rows as its rows
    reach them (:func:`_grid_row`; two kept, each computed once per run), blends the two nearest once per output
    row into ``GW * depth * K`` coefficients (and K zeros: a pixel at the top bin reads the next run with weight
    0, so there is no clamp per pixel), then slices the row (:func:`_slice_row`).
    """
    h, w = rgb.shape[0], rgb.shape[1]
    GH, GW = features.shape[0], features.shape[1]
    K = bias.shape[0] // depth
    span = GW * depth * K
    zero, half = np.float32(0.0), np.float32(0.5)
    xs0, xs1, wxs = np.empty(w, np.uint64), np.empty(w, np.uint64), np.empty(w, np.float32)
    for x in range(w):
        fx = min(max((np.float32(x + col_off) + half) / np.float32(full_w) * GW - half, zero), np.float32(GW - 1))
        x0 = int(fx)
        xs0[x], xs1[x] = np.uint64(x0 * depth * K), np.uint64(min(x0 + 1, GW - 1) * depth * K)
        wxs[x] = fx - np.float32(x0)
    for task in prange(chunks):
        top, bottom, row = np.zeros(span + K, np.float32), np.zeros(span + K, np.float32), np.zeros(span + K, np.float32)
        top_at, bottom_at = -1, -1
        rr, gg, bl, zz = np.empty(w, np.float32), np.empty(w, np.float32), np.empty(w, np.float32), np.empty(w, np.float32)
        for y in range(task * h // chunks, (task + 1) * h // chunks):
            fy = min(max((np.float32(y + row_off) + half) / np.float32(full_h) * GH - half, zero), np.float32(GH - 1))
            y0 = int(fy)
            y1, wy = min(y0 + 1, GH - 1), fy - np.float32(y0)
            if top_at != y0 and bottom_at == y0:  # moved down one cell row: the bottom becomes the top
                top, bottom, top_at, bottom_at = bottom, top, bottom_at, top_at
            if top_at != y0:
                _grid_row(features, y0, weight, bias, top)
                top_at = y0
            if bottom_at != y1:
                _grid_row(features, y1, weight, bias, bottom)
                bottom_at = y1
            for i in range(span):  # vectorised: the row's coefficients, blended between the two cell rows
                row[i] = top[i] * (np.float32(1.0) - wy) + bottom[i] * wy
            _pixels_row(rgb, y, rr, gg, bl)
            if zmap.shape[0] > 0:
                zz[:] = zmap[y]
            else:
                _guide_row(w1, b1, w2, b2, depth, rr, gg, bl, zz)
            _slice_row(row, rr, gg, bl, zz, xs0, xs1, wxs, K, out[y])
