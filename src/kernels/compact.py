"""The compact net in one pass over the image, compiled with numba: the CPU backend of :mod:`src.inference.runtime`.

Algorithm and schedule apart, as in Halide: :func:`src.models.networks.CompactNet.forward` (torch) defines what
each pixel is; this module is one schedule of it. Each thread takes a run of row bands; per band it computes the
colour mix once over the band's rows plus the bank's halo (reflect-101 or zero borders, as the net pads), then
per output row the separable (column, then row) or full correlations, the pair magnitudes, the 1x1 head and the
clamp, and writes the row once, as float32, or as uint8 / uint16 (``round(y * 255)``, ``round(y * 65535)``) when
asked, which moves a quarter or half of the bytes. Intermediates live in per-thread scratch rows that stay in
cache; the image is read once and the output written once. The default net's shape (one mixed channel, one
separable 5-tap pair, the head folded in) has its own row, :func:`_pair_row`: both column passes share each
load, and the row passes, magnitude, head and clamp run in one loop, so no response row is stored.

Compiled on first use and cached on disk (numba ``cache=True``): a fresh process with a warm cache loads the
machine code instead of compiling it. The parity tests hold it to the torch forward at every size from 1x1 up.
"""
from __future__ import annotations

import threading
from typing import Callable

import cv2
import numba
import numpy as np
from numba import get_thread_id, njit, prange

OUT_SCALE = {np.dtype(np.float32): 1.0, np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
# Output rows per band: the band's mixed channels ((rows + 2 r) x (W + 2 r) float32 each) stay in L2.
BAND_ROWS = 32


@njit(cache=True, inline="always")
def _reflect(i: int, n: int) -> int:
    """Index ``i`` of a length-``n`` axis under OpenCV's reflect-101 border (``gfedcb|abcdefgh|gfedcba``)."""
    if n == 1:
        return 0
    period = 2 * n - 2
    i = abs(i) % period
    return i if i < n else period - i


@njit(cache=True, fastmath={"contract"})
def _mix_band(rgb, mix, chan, y0, rows_p, r, reflect):
    """``chan[c, i, xp]`` for ``i < rows_p``: mixed channel ``c`` at image row ``y0 - r + i``, column ``xp - r``,
    borders applied. (Whole scratch arrays go in, never slices: a slice's layout would stop vectorisation.)"""
    H, W = rgb.shape[0], rgb.shape[1]
    C, W_p = chan.shape[0], chan.shape[2]
    for i in range(rows_p):
        y = y0 - r + i
        if not reflect and (y < 0 or y >= H):
            chan[:, i, :] = 0.0
            continue
        src = rgb[_reflect(y, H)].reshape(3 * W)
        for c in range(C):
            m0, m1, m2 = mix[c, 0], mix[c, 1], mix[c, 2]
            dst = chan[c, i]
            # uint8 -> float32 explicitly: uint8 * float32 would promote to float64 (numpy's rule) and run ~7x slower
            for x in range(W):  # the interior: a tight loop the compiler vectorises
                dst[x + r] = (m0 * np.float32(src[3 * x]) + m1 * np.float32(src[3 * x + 1])
                              + m2 * np.float32(src[3 * x + 2]))
            for b in range(r):  # the 2 r border columns
                for xp in (b, W_p - 1 - b):
                    if reflect:
                        xs = 3 * _reflect(xp - r, W)
                        dst[xp] = (m0 * np.float32(src[xs]) + m1 * np.float32(src[xs + 1])
                                   + m2 * np.float32(src[xs + 2]))
                    else:
                        dst[xp] = 0.0


@njit(cache=True, fastmath={"contract"})
def _column_pass(chan_c, i, col, tmp):
    """``tmp[xp] = sum_a col[a] * chan_c[i + a, xp]``: one store per pixel (the 3, 5 and 7 taps written out, so the
    compiler vectorises along the row instead of looping over taps)."""
    k, W_p = col.shape[0], tmp.shape[0]
    if k == 5:
        c0, c1, c2, c3, c4 = col[0], col[1], col[2], col[3], col[4]
        r0, r1, r2, r3, r4 = chan_c[i], chan_c[i + 1], chan_c[i + 2], chan_c[i + 3], chan_c[i + 4]
        for x in range(W_p):
            tmp[x] = c0 * r0[x] + c1 * r1[x] + c2 * r2[x] + c3 * r3[x] + c4 * r4[x]
    elif k == 3:
        c0, c1, c2 = col[0], col[1], col[2]
        r0, r1, r2 = chan_c[i], chan_c[i + 1], chan_c[i + 2]
        for x in range(W_p):
            tmp[x] = c0 * r0[x] + c1 * r1[x] + c2 * r2[x]
    else:
        tmp[:] = 0.0
        for a in range(k):
            w, src = col[a], chan_c[i + a]
            for x in range(W_p):
                tmp[x] += w * src[x]


@njit(cache=True, fastmath={"contract"})
def _row_pass(tmp, row, acc, first):
    """``acc[x] (=|+=) sum_b row[b] * tmp[x + b]`` (``first``: overwrite, else add)."""
    k, W = row.shape[0], acc.shape[0]
    if k == 5:
        w0, w1, w2, w3, w4 = row[0], row[1], row[2], row[3], row[4]
        if first:
            for x in range(W):
                acc[x] = w0 * tmp[x] + w1 * tmp[x + 1] + w2 * tmp[x + 2] + w3 * tmp[x + 3] + w4 * tmp[x + 4]
        else:
            for x in range(W):
                acc[x] += w0 * tmp[x] + w1 * tmp[x + 1] + w2 * tmp[x + 2] + w3 * tmp[x + 3] + w4 * tmp[x + 4]
    elif k == 3:
        w0, w1, w2 = row[0], row[1], row[2]
        if first:
            for x in range(W):
                acc[x] = w0 * tmp[x] + w1 * tmp[x + 1] + w2 * tmp[x + 2]
        else:
            for x in range(W):
                acc[x] += w0 * tmp[x] + w1 * tmp[x + 1] + w2 * tmp[x + 2]
    else:
        if first:
            acc[:] = 0.0
        for b in range(k):
            w = row[b]
            for x in range(W):
                acc[x] += w * tmp[x + b]


@njit(cache=True, fastmath={"contract"})
def _responses_row(chan, i, sep, cols, rows_k, full, resp, tmp):
    """``resp[o, x]`` for the output row whose halo starts at band row ``i``: sum over channels of the correlation."""
    R, C, k = cols.shape[0], cols.shape[1], cols.shape[2]
    W = resp.shape[1]
    for o in range(R):
        acc = resp[o]
        for c in range(C):
            if sep:
                _column_pass(chan[c], i, cols[o, c], tmp)
                _row_pass(tmp, rows_k[o, c], acc, c == 0)
            else:
                if c == 0:
                    acc[:] = 0.0
                for a in range(k):
                    src = chan[c, i + a]
                    for b in range(k):
                        w = full[o, c, a, b]
                        for x in range(W):
                            acc[x] += w * src[x + b]


@njit(cache=True, fastmath={"contract"})
def _store(z, dst, scale):
    """``dst[:] = clamp(z, 0, 1)``, times ``scale`` and rounded half up when ``scale`` is not 1 (uint8 / uint16)."""
    lo, hi = np.float32(0.0), np.float32(1.0)
    if scale == 1.0:
        for x in range(dst.shape[0]):
            dst[x] = min(max(z[x], lo), hi)
    else:
        s = np.float32(scale)
        for x in range(dst.shape[0]):
            dst[x] = np.floor(min(max(z[x], lo), hi) * s + np.float32(0.5))


@njit(cache=True, fastmath={"contract"})
def _pair_row(chan_c, i, cols, rows_k, sign, bias, tmp, dst, scale):
    """The default net's whole row in two loops: one mixed channel, one pair of separable 5-tap kernels, the
    magnitude with the one-weight head folded in. Both column passes share each load of the 5 rows; the two row
    passes, the magnitude, the head and the clamp run in the second loop, so no response row is stored."""
    a0, a1, a2, a3, a4 = cols[0, 0, 0], cols[0, 0, 1], cols[0, 0, 2], cols[0, 0, 3], cols[0, 0, 4]
    b0, b1, b2, b3, b4 = cols[1, 0, 0], cols[1, 0, 1], cols[1, 0, 2], cols[1, 0, 3], cols[1, 0, 4]
    r0, r1, r2, r3, r4 = chan_c[i], chan_c[i + 1], chan_c[i + 2], chan_c[i + 3], chan_c[i + 4]
    ta, tb = tmp[0], tmp[1]
    for x in range(ta.shape[0]):
        p0, p1, p2, p3, p4 = r0[x], r1[x], r2[x], r3[x], r4[x]
        ta[x] = a0 * p0 + a1 * p1 + a2 * p2 + a3 * p3 + a4 * p4
        tb[x] = b0 * p0 + b1 * p1 + b2 * p2 + b3 * p3 + b4 * p4
    u0, u1, u2, u3, u4 = rows_k[0, 0, 0], rows_k[0, 0, 1], rows_k[0, 0, 2], rows_k[0, 0, 3], rows_k[0, 0, 4]
    v0, v1, v2, v3, v4 = rows_k[1, 0, 0], rows_k[1, 0, 1], rows_k[1, 0, 2], rows_k[1, 0, 3], rows_k[1, 0, 4]
    lo, hi = np.float32(0.0), np.float32(1.0)
    if scale == 1.0:  # two copies of the loop, so neither tests the output type per pixel
        for x in range(dst.shape[0]):
            u = u0 * ta[x] + u1 * ta[x + 1] + u2 * ta[x + 2] + u3 * ta[x + 3] + u4 * ta[x + 4]
            v = v0 * tb[x] + v1 * tb[x + 1] + v2 * tb[x + 2] + v3 * tb[x + 3] + v4 * tb[x + 4]
            dst[x] = min(max(sign * np.sqrt(u * u + v * v) + bias, lo), hi)
    else:
        s = np.float32(scale)
        for x in range(dst.shape[0]):
            u = u0 * ta[x] + u1 * ta[x + 1] + u2 * ta[x + 2] + u3 * ta[x + 3] + u4 * ta[x + 4]
            v = v0 * tb[x] + v1 * tb[x + 1] + v2 * tb[x + 2] + v3 * tb[x + 3] + v4 * tb[x + 4]
            dst[x] = np.floor(min(max(sign * np.sqrt(u * u + v * v) + bias, lo), hi) * s + np.float32(0.5))


@njit(cache=True, fastmath={"contract"})
def _head_row(resp, pairs, linear, fold, fold_sign, fold_bias, head_w, head_b, head_n, out, y, scale, feats, zs):
    """Features (pair magnitudes, then linear responses), the 1x1 head, the clamp, written to ``out[:, y]``.

    Every loop runs along the row (x innermost), so the compiler vectorises it.
    """
    W = resp.shape[1]
    if fold and out.shape[0] == 1:  # one feature, one output: feature and fold in one loop, then the store
        z = zs[0]
        if pairs == 1:
            u, v = resp[0], resp[1]
            for x in range(W):
                z[x] = fold_sign * np.sqrt(u[x] * u[x] + v[x] * v[x]) + fold_bias
        else:
            u = resp[0]
            for x in range(W):
                z[x] = fold_sign * u[x] + fold_bias
        _store(z, out[0, y], scale)
        return
    for p in range(pairs):
        u, v, f = resp[p], resp[pairs + p], feats[p]
        for x in range(W):
            f[x] = np.sqrt(u[x] * u[x] + v[x] * v[x])
    for q in range(linear):
        feats[pairs + q, :W] = resp[2 * pairs + q]
    if fold:
        z = zs[0]
        f = feats[0]
        for x in range(W):
            z[x] = fold_sign * f[x] + fold_bias
        n_in = 1
    else:
        n_in = pairs + linear
        zs[:n_in] = feats[:n_in]
        for li in range(head_w.shape[0]):
            n_out = head_n[li]
            last = li == head_w.shape[0] - 1
            for o in range(n_out):
                acc = feats[o]
                acc[:] = head_b[li, o]
                for f_i in range(n_in):
                    w = head_w[li, o, f_i]
                    src = zs[f_i]
                    for x in range(W):
                        acc[x] += w * src[x]
                if not last:
                    for x in range(W):
                        acc[x] = max(acc[x], np.float32(0.0))
            zs[:n_out] = feats[:n_out]
            n_in = n_out
    for o in range(out.shape[0]):
        _store(zs[o], out[o, y], scale)


@njit(cache=True, parallel=True, fastmath={"contract"})
def fused_compact(rgb, out, mix, sep, cols, rows_k, full, pairs, linear, fold, fold_sign, fold_bias,
                  head_w, head_b, head_n, reflect, pair_fold, band_rows, scale, chan_s, resp_s, tmp_s, feats_s, zs_s):
    """The compact net on RGB uint8 ``(H, W, 3)`` into ``out`` ``(C_out, H, W)`` (float32, uint8 or uint16).

    Arguments are :func:`flat_args`' (the plan as flat arrays; ``pair_fold``: the default net's shape, each row
    through :func:`_pair_row`); ``scale`` is 1 for float32 output, 255 or 65535 for uint8 / uint16 (rounded half
    up after the clamp). ``*_s``: one scratch set per thread
    (:func:`scratch`), indexed by numba's thread id, so the bands can go to whichever thread is free (a core busy
    with another program then slows its share only).
    """
    H = rgb.shape[0]
    r = cols.shape[2] // 2
    n_bands = (H + band_rows - 1) // band_rows
    for band in prange(n_bands):
        tid = get_thread_id()
        chan, resp, tmp, feats, zs = chan_s[tid], resp_s[tid], tmp_s[tid], feats_s[tid], zs_s[tid]
        y0 = band * band_rows
        y1 = min(H, y0 + band_rows)
        _mix_band(rgb, mix, chan, y0, (y1 - y0) + 2 * r, r, reflect)
        for y in range(y0, y1):
            if pair_fold:
                _pair_row(chan[0], y - y0, cols, rows_k, fold_sign, fold_bias, tmp, out[0, y], scale)
                continue
            _responses_row(chan, y - y0, sep, cols, rows_k, full, resp, tmp[0])
            _head_row(resp, pairs, linear, fold, fold_sign, fold_bias, head_w, head_b, head_n, out, y, scale,
                      feats, zs)


def scratch(threads: int, width: int, channels: int, responses: int, features: int, radius: int,
            band_rows: int = BAND_ROWS) -> tuple[np.ndarray, ...]:
    """Per-thread work arrays for :func:`fused_compact` on images ``width`` pixels wide."""
    wp = width + 2 * radius
    return (np.empty((threads, channels, band_rows + 2 * radius, wp), np.float32),
            np.empty((threads, responses, width), np.float32), np.empty((threads, 2, wp), np.float32),
            np.empty((threads, features, width), np.float32), np.empty((threads, features, width), np.float32))


# ------------------------------------------------------------------------------------- the runner around it
def flat_args(plan) -> dict:
    """A :class:`~src.inference.runtime.CompactPlan` as the flat float32 arrays :func:`fused_compact` takes."""
    R, C = len(plan.kernels), len(plan.kernels[0])
    k = 2 * plan.radius + 1
    sep = all(kern[0] == "sep" for row in plan.kernels for kern in row)
    cols, rows = np.zeros((R, C, k), np.float32), np.zeros((R, C, k), np.float32)
    full = np.zeros((R, C, k, k), np.float32)
    for o, row in enumerate(plan.kernels):
        for c, kern in enumerate(row):
            if kern[0] == "sep":
                rows[o, c], cols[o, c] = kern[1], kern[2]
                full[o, c] = np.outer(kern[2], kern[1])
            else:
                full[o, c] = kern[1]
    layers = plan.head if plan.fold is None else []
    n_max = max([1] + [w.shape[0] for w, _ in layers] + [w.shape[1] for w, _ in layers])
    head_w = np.zeros((len(layers), n_max, n_max), np.float32)
    head_b = np.zeros((len(layers), n_max), np.float32)
    for li, (w, b) in enumerate(layers):
        head_w[li, : w.shape[0], : w.shape[1]], head_b[li, : b.shape[0]] = w, b
    sign, bias = plan.fold if plan.fold is not None else (1.0, 0.0)
    # the default net's shape (one mixed channel, one separable 5-tap pair, the head folded in): the fused row
    pair_fold = (sep and (R, C, k) == (2, 1, 5) and plan.fold is not None and plan.pairs == 1 and plan.linear == 0
                 and plan.out_channels == 1)
    return dict(mix=plan.mix if plan.mix is not None else np.eye(3, dtype=np.float32), sep=sep, cols=cols,
                rows_k=rows, full=full, pairs=plan.pairs, linear=plan.linear, fold=plan.fold is not None,
                fold_sign=np.float32(sign), fold_bias=np.float32(bias), head_w=head_w, head_b=head_b,
                head_n=np.array([w.shape[0] for w, _ in layers], np.int64),
                reflect=plan.border == cv2.BORDER_REFLECT_101, pair_fold=pair_fold)


class _Scratch(threading.local):
    """Each calling thread's scratch sets (a demo serves several requests at once)."""

    def __init__(self) -> None:
        self.sets: dict = {}


_SCRATCH = _Scratch()
# Below this many pixels the kernel runs on the calling thread alone: a parallel region's start costs more than
# it saves on a small image or tile.
PARALLEL_PIXELS = 1 << 18


def runner(plan, threads: int, auto_threads: bool, out_dtype=np.float32,
           band_rows: int | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """RGB uint8 ``(H, W, 3)`` -> ``(C, H, W)`` computing ``plan`` with :func:`fused_compact` on ``threads``
    threads (``auto_threads``: one below :data:`PARALLEL_PIXELS` pixels). See
    :func:`src.inference.runtime.numba_runner`, which builds the plan."""
    out_dtype = np.dtype(out_dtype)
    if out_dtype not in OUT_SCALE:
        raise ValueError(f"out_dtype must be float32, uint8 or uint16, got {out_dtype}")
    if plan.flat is None:
        plan.flat = flat_args(plan)
    args, scale, rows = plan.flat, OUT_SCALE[out_dtype], band_rows or BAND_ROWS
    features = max([plan.pairs + plan.linear, 1] + [int(n) for n in args["head_n"]])
    sizes = (args["mix"].shape[0], args["cols"].shape[0], features, plan.radius)

    def run(rgb: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``out``: a C-contiguous ``(C, H, W)`` array of ``out_dtype`` to write into (default: a new one)."""
        rgb = np.ascontiguousarray(rgb)
        H, W = rgb.shape[:2]
        n = 1 if auto_threads and H * W < PARALLEL_PIXELS else threads
        n = max(1, min(n, numba.config.NUMBA_NUM_THREADS))
        key = (n, W, rows, sizes)
        work = _SCRATCH.sets.get(key)
        if work is None:
            _SCRATCH.sets.clear()  # one size kept per thread: a folder of mixed sizes does not pile up
            work = _SCRATCH.sets[key] = scratch(n, W, *sizes, band_rows=rows)
        if out is None:
            out = np.empty((plan.out_channels, H, W), out_dtype)
        elif out.shape != (plan.out_channels, H, W) or out.dtype != out_dtype or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous {out_dtype} array of shape {(plan.out_channels, H, W)}, "
                             f"got {out.dtype} {out.shape}")
        previous, chunk = numba.get_num_threads(), numba.set_parallel_chunksize(1)
        numba.set_num_threads(n)
        try:
            fused_compact(rgb, out, band_rows=rows, scale=scale, chan_s=work[0], resp_s=work[1], tmp_s=work[2],
                          feats_s=work[3], zs_s=work[4], **args)
        finally:
            numba.set_num_threads(previous)
            numba.set_parallel_chunksize(chunk)
        return out

    run.clamped = True
    run.out_layout = "chw"  # run(rgb, out=...) writes a (C, H, W) array in place
    return run
