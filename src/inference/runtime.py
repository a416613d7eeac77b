"""Run a trained :class:`CompactNet` without torch's convolutions: one compiled numba pass on the CPU
(:func:`numba_runner`, :mod:`src.kernels.compact`: ``predict``'s default), or OpenCV kernels on row bands
(:func:`fused_runner`, ``--backend opencv``, and the fallback without numba); one compiled kernel on CUDA.

CPU. PyTorch's CPU convolution is slow for a few channels (a 1 -> 2 channel 5x5 convolution takes
~27 ms per megapixel here, OpenCV's ``filter2D`` ~0.8 ms), so the net's steps (colour mix, filter bank,
magnitude, 1x1 head, clamp) run as OpenCV kernels. Step by step over a whole image, every
intermediate image makes a round trip to memory and every fresh allocation page-faults, which is why
that form only matched the OpenCV Sobel pipeline. :func:`fused_runner` runs all the steps on bands of
~128K pixels (plus the filter's halo rows) whose intermediates stay in cache, in reused per-thread
arrays, and writes each band's clamped result straight into the output (``make bench`` measures it
against the pipeline). The result matches the torch forward to ~1e-6 (tested), borders included.

CUDA. :func:`fused_torch` is the same net as one function of a uint8 ``(B, H, W, 3)`` tensor (mix
with the 1/255 folded in, the k x k correlation written as k^2 shifted multiply-adds, magnitude, head,
clamp); ``torch.compile`` turns it into fused kernels that read 3 bytes and write 4 (or 1) per
pixel. It computes in fp32: the kernel is memory-bound (uint8 in already), so bf16 would save no
traffic and would cost the 1e-5 match (bf16 keeps 8 bits of mantissa, ~4e-3).
"""
from __future__ import annotations

import copy
import dataclasses
import functools
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn as nn

from src.filters.functional import pad_reflect101
from src.models.networks import CompactNet, MirrorConv2d
from src.threads import available_cores

# Pixels per band (plus halo rows): with the 5x5 bank ~8 float32 planes of this size (~4 MB) live at once
# per thread, in cache rather than memory. 2^16 to 2^18 ran alike here; smaller bands were slower (more
# calls, more halo rows).
BAND_PIXELS = 1 << 17
# From this many pixels ``predict`` shares the bands out to a thread pool (below it, the pool's start-up
# and the threads' contention for the cache cost what they gain: 1 and 4 MP went either way).
POOL_PIXELS = 8 << 20
# A kernel counts as separable (run as a column then a row pass) when its rank-1 remainder is this
# small in L1 norm: the remainder bounds the response error for gray values in [0, 1].
SEPARABLE_TOL = 1e-7


@dataclasses.dataclass
class CompactPlan:
    """A compact net's weights in the form the CPU runtime applies them (float32 numpy)."""

    mix: np.ndarray | None  # (m, 3), the 1/255 folded in; None: the bank sees R, G, B (1/255 in the kernels)
    kernels: list[list[tuple]]  # [response][channel] -> ("full", k x k) or ("sep", row (k,), column (k,))
    pairs: int
    linear: int
    head: list[tuple[np.ndarray, np.ndarray]]  # 1x1 layers (weight (out, in), bias (out,)), ReLU between
    fold: tuple[float, float] | None  # (sign, bias) when the one-weight head is folded into the kernels
    border: int
    radius: int
    out_channels: int
    bound: float = float("inf")  # :func:`output_bound`, set by :func:`compact_plan`
    flat: dict | None = None  # src.kernels.compact.flat_args, made on first use by :func:`numba_runner`


def compact_plan(net: nn.Module, separable: bool | None = None) -> CompactPlan | None:
    """The CPU runtime's form of ``net``, or None if ``net`` is not an eval-mode plain :class:`CompactNet`.

    ``separable``: None runs a ``separable=True`` net's factors, and kernels that are exactly rank 1
    (within :data:`SEPARABLE_TOL`), as ``cv2.sepFilter2D`` and the rest as ``cv2.filter2D``; True / False
    forces every kernel one way (True only when all are rank 1).
    """
    if type(net) is not CompactNet or net.training or not _plain(net):
        return None
    with torch.no_grad():
        mix = net.mix.weight.detach().cpu().double().numpy()[:, :, 0, 0] / 255.0 if isinstance(net.mix, nn.Conv2d) else None
        bank = net.bank_kernels().detach().cpu().double().numpy()  # (responses, channels, k, k)
        layers = [m for m in (net.head if isinstance(net.head, nn.Sequential) else [net.head]) if isinstance(m, nn.Conv2d)]
        head = [(m.weight.detach().cpu().double().numpy()[:, :, 0, 0], m.bias.detach().cpu().double().numpy()) for m in layers]
    scale = np.full(bank.shape[0], 1.0 if mix is not None else 1.0 / 255.0)
    fold = None
    if len(head) == 1 and head[0][0].shape == (1, 1):  # one feature, one output: scale the kernels instead
        w, b = float(head[0][0][0, 0]), float(head[0][1][0])
        scale *= abs(w) if net.pairs else w
        fold = (1.0 if (w >= 0 or not net.pairs) else -1.0, b)
    bank = bank * scale[:, None, None, None]
    if net.bank_rows is not None:  # separable by construction: its own factors, exactly
        with torch.no_grad():
            cols_t, rows_t = net.bank_factors()  # a symmetric net's stay exactly mirrored: OpenCV's fast path
        cols = cols_t.detach().cpu().double().numpy()[:, :, :, 0]  # (responses, channels, k)
        rows = rows_t.detach().cpu().double().numpy()[:, 0, 0, :] * scale[:, None]
        split = [[(rows[o].astype(np.float32), cols[o, c].astype(np.float32)) for c in range(cols.shape[1])]
                 for o in range(cols.shape[0])]
    else:
        split = [[_split(k) for k in row] for row in bank]

    def form(kernel: np.ndarray, factors: tuple | None) -> tuple:
        sep = factors is not None if separable is None else separable
        if sep and factors is None:
            raise ValueError("separable=True needs rank-1 kernels; this net's are not")
        return ("sep", *factors) if sep else ("full", kernel.astype(np.float32))

    kernels = [[form(k, f) for k, f in zip(rk, rf)] for rk, rf in zip(bank, split)]
    plan = CompactPlan(
        mix=None if mix is None else mix.astype(np.float32), kernels=kernels, pairs=net.pairs, linear=net.linear,
        head=[(w.astype(np.float32), b.astype(np.float32)) for w, b in head], fold=fold,
        border=cv2.BORDER_REFLECT_101 if net.padding == "reflect" else cv2.BORDER_CONSTANT,
        radius=net.receptive_radius, out_channels=net.out_channels)
    plan.bound = output_bound(plan)
    return plan


def _plain(net: nn.Module) -> bool:
    """Only stock layers (a quantized or wrapped copy must run through torch)."""
    head = list(net.head) if isinstance(net.head, nn.Sequential) else [net.head]
    parts = [net.mix, net.bank] + ([net.bank_rows] if net.bank_rows is not None else []) + head

    return all(type(m) in (nn.Conv2d, MirrorConv2d, nn.Identity, nn.ReLU) for m in parts)


def _split(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(row, column)`` float32 factors with ``column x row == kernel`` (to SEPARABLE_TOL), or None."""
    u, s, vt = np.linalg.svd(kernel)
    col, row = u[:, 0] * np.sqrt(s[0]), vt[0] * np.sqrt(s[0])
    if np.abs(kernel - np.outer(col, row)).sum() > SEPARABLE_TOL:
        return None
    return row.astype(np.float32), col.astype(np.float32)


def _correlate(plane: np.ndarray, kernel: tuple, border: int, dst: np.ndarray) -> np.ndarray:
    if kernel[0] == "sep":
        return cv2.sepFilter2D(plane, cv2.CV_32F, kernel[1], kernel[2], dst=dst, borderType=border)
    return cv2.filter2D(plane, cv2.CV_32F, kernel[1], dst=dst, borderType=border)


class _Scratch(threading.local):
    """Each thread's band-sized work arrays, kept from band to band and call to call: fresh large arrays
    page-fault on first touch, which costs as much as the arithmetic here."""
    def __init__(self) -> None:
        self.arrays: dict = {}

    def get(self, name, shape: tuple) -> np.ndarray:
        a = self.arrays.get(name)
        if a is None or a.shape[0] < shape[0] or a.shape[1:] != shape[1:]:
            a = self.arrays[name] = np.empty(shape, np.float32)
        return a[: shape[0]]


_SCRATCH = _Scratch()
_SCRATCH_MAX_PIXELS = 4 * BAND_PIXELS  # larger calls (a whole image at once) get fresh arrays


def run_planes(plan: CompactPlan, rgb: np.ndarray) -> list[np.ndarray]:
    """The net on RGB uint8 ``(h, w, 3)`` step by step: one float32 ``(h, w)`` plane per output, not clamped.

    The planes are the calling thread's scratch arrays for band-sized inputs: use them before the next call.
    """
    h, w = rgb.shape[:2]
    if h * w <= _SCRATCH_MAX_PIXELS:
        buf = lambda name, c=1: _SCRATCH.get(name, (h, w) if c == 1 else (h, w, c))  # noqa: E731
    else:
        buf = lambda name, c=1: np.empty((h, w) if c == 1 else (h, w, c), np.float32)  # noqa: E731
    x = buf("x", 3)
    np.copyto(x, rgb, casting="unsafe")  # uint8 -> float32; cv2.transform keeps the input's depth
    if plan.mix is not None:
        chans = [cv2.transform(x, row[None], dst=buf(("chan", i))) for i, row in enumerate(plan.mix)]
    else:
        chans = [cv2.extractChannel(x, c, dst=buf(("chan", c))) for c in range(3)]
    resp = []
    for o, row in enumerate(plan.kernels):
        acc = _correlate(chans[0], row[0], plan.border, buf(("resp", o)))
        for ch, k in zip(chans[1:], row[1:]):
            acc = cv2.add(acc, _correlate(ch, k, plan.border, buf("tmp")), dst=acc)
        resp.append(acc)
    p = plan.pairs
    feats = [cv2.magnitude(resp[i], resp[p + i], magnitude=buf(("feat", i))) for i in range(p)]
    feats += resp[2 * p : 2 * p + plan.linear]
    if plan.fold is not None:
        sign, bias = plan.fold
        y = feats[0]
        if sign < 0:
            np.negative(y, out=y)
        if bias:
            np.add(y, np.float32(bias), out=y)
        return [y]
    z = feats
    for li, (wt, b) in enumerate(plan.head):
        out = []
        for o in range(wt.shape[0]):
            acc = buf(("head", li, o))
            acc.fill(b[o])
            for f, feat in enumerate(z):
                acc = cv2.scaleAdd(feat, float(wt[o, f]), acc, dst=acc)
            out.append(acc if li == len(plan.head) - 1 else np.maximum(acc, 0, out=acc))
        z = out
    return z


@functools.lru_cache(maxsize=None)
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="compact-band")


def fused_runner(net: nn.Module, threads: int | None = None, band_pixels: int = BAND_PIXELS,
                 separable: bool | None = None) -> Callable[[np.ndarray], np.ndarray] | None:
    """A function RGB uint8 ``(H, W, 3)`` -> float32 ``(C, H, W)`` in [0, 1] computing ``net``, or None.

    The image goes through in row bands of about ``band_pixels`` pixels, each with the bank's halo
    (the rows it discards); memory beyond the output is a few bands per thread. ``threads=1`` runs
    the bands in turn, each OpenCV step spread over OpenCV's own threads; ``threads=N`` shares the
    bands out to a pool of N threads instead. ``None`` (``predict``): the pool, one thread per usable
    core up to 2, for images of :data:`POOL_PIXELS` or more, where ``make bench`` measured it ahead
    (24 MP: 2.05x the OpenCV pipeline against 1.48x in turn), in turn below. ``band_pixels=0``:
    the whole image in one step (op by op).

    >>> from src.models import exact_sobel_net
    >>> fused_runner(exact_sobel_net())(np.zeros((5, 7, 3), np.uint8)).shape
    (1, 5, 7)
    """
    plan = _cached_plan(net, separable)
    if plan is None:
        return None
    n_threads = max(1, threads or 1)
    nonnegative = plan.fold is not None and plan.pairs > 0 and plan.fold[0] > 0 and plan.fold[1] >= 0

    def run(rgb: np.ndarray) -> np.ndarray:
        H, W = rgb.shape[:2]
        out = np.empty((plan.out_channels, H, W), np.float32)
        rows = H if band_pixels <= 0 else max(1, band_pixels // W)
        r = plan.radius

        def band(y0: int) -> None:
            y1 = min(H, y0 + rows)
            ya, yb = max(0, y0 - r), min(H, y1 + r)
            for c, plane in enumerate(run_planes(plan, rgb[ya:yb])):
                if nonnegative:  # a magnitude plus a bias >= 0: only the top needs the clamp (a faster op)
                    cv2.threshold(plane[y0 - ya : y1 - ya], 1.0, 1.0, cv2.THRESH_TRUNC, dst=out[c, y0:y1])
                else:
                    np.clip(plane[y0 - ya : y1 - ya], 0.0, 1.0, out=out[c, y0:y1])

        starts = range(0, H, rows)
        workers = n_threads if threads is not None else (_auto_pool() if H * W >= POOL_PIXELS else 1)
        if workers > 1 and len(starts) > 1:
            list(_pool(workers).map(band, starts))  # list(): re-raises a band's exception here
        else:
            for y0 in starts:
                band(y0)
        return out

    run.clamped = True  # in [0, 1] already: predict skips its own clamp
    # uint8 in and finite weights bounded as below: every value is finite, so predict skips its NaN scan
    run.finite = plan.bound < FINITE_BOUND
    return run


@functools.lru_cache(maxsize=None)
def _auto_pool() -> int:
    """Pool size for large images: one thread per usable core, at most 2 (read once: predict runs per image)."""
    return min(2, available_cores())


# Largest bound on any intermediate value for which float32 stays finite through the magnitude's squares.
FINITE_BOUND = 1e18


def output_bound(plan: CompactPlan) -> float:
    """An upper bound on |any value| the plan computes from uint8 pixels (inf if a weight is not finite).

    >>> from src.models import exact_sobel_net
    >>> 0 < output_bound(compact_plan(exact_sobel_net())) < 100
    True
    """
    l1 = lambda a: float(np.abs(np.asarray(a, np.float64)).sum())  # noqa: E731
    chan = 255.0 * (max(l1(row) for row in plan.mix) if plan.mix is not None else 1.0)
    resp = chan * max(sum(l1(k[1]) * (l1(k[2]) if k[0] == "sep" else 1.0) for k in row) for row in plan.kernels)
    z = resp * (2 ** 0.5 if plan.pairs else 1.0)
    if plan.fold is not None:
        z += abs(plan.fold[1])
    else:
        for wt, b in plan.head:
            z = max(l1(w_row) for w_row in wt) * z + float(np.abs(b).max())
    return z if np.isfinite(z) else float("inf")


_KEPT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # net -> {name: (its state, what was made)}


def kept(net: nn.Module, name: str, make: Callable[[], object], *key: object):
    """``make()``, kept per ``net`` and ``name`` until ``net`` changes (mode, a parameter replaced or written in place:
    ``_version`` counts an optimiser step, ``load_state_dict``) or ``key`` does. What ``make`` returns must not
    refer to ``net`` (deep-copy it), or ``net`` could never be collected."""
    state = (net.training, key, tuple((p.data_ptr(), p._version) for p in net.parameters()))
    slot = _KEPT.setdefault(net, {})
    hit = slot.get(name)
    if hit is None or hit[0] != state:
        hit = slot[name] = (state, make())
    return hit[1]


def _cached_plan(net: nn.Module, separable: bool | None) -> CompactPlan | None:
    """:func:`compact_plan`, rebuilt only when a parameter changed (``predict`` asks once per image)."""
    return kept(net, "plan", lambda: compact_plan(net, separable), separable)


def compiled_copy(net: nn.Module) -> nn.Module:
    """A copy of ``net`` through ``torch.compile`` (inductor, dynamic sizes: one compilation serves every image
    size), kept until ``net`` changes. Compiles on its first call: ~20 s cold for the CAN here, ~4 s with
    inductor's on-disk cache warm; then 3.1-3.5x its eager speed on the CPU for the CAN (``make bench``'s model table)."""
    return kept(net, "compiled", lambda: torch.compile(copy.deepcopy(net), dynamic=True))


# ------------------------------------------------------------------------------------ torch (CUDA) form
def fused_weights(net: nn.Module) -> dict | None:
    """The tensors and sizes :func:`fused_torch` takes, on ``net``'s device; None if ``net`` is not a plain eval CompactNet."""
    if type(net) is not CompactNet or net.training or not _plain(net):
        return None
    layers = [m for m in (net.head if isinstance(net.head, nn.Sequential) else [net.head]) if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        mix = net.mix.weight[:, :, 0, 0].float() / 255.0 if isinstance(net.mix, nn.Conv2d) else None
        bank = net.bank_kernels().float() / (255.0 if mix is None else 1.0)
        head = [(m.weight[:, :, 0, 0].float(), m.bias.float()) for m in layers]
    return dict(mix=mix, bank=bank, head=head, pairs=net.pairs, linear=net.linear, reflect=net.padding == "reflect")


def fused_torch(x: torch.Tensor, mix: torch.Tensor | None, bank: torch.Tensor, head: list, pairs: int,
                linear: int, reflect: bool, out_dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The compact net as one function of uint8 pixels: ``(B, H, W, 3)`` uint8 -> ``(B, C, H, W)`` in [0, 1].

    Arguments are :func:`fused_weights`'s. Written as shifted multiply-adds so that ``torch.compile``
    fuses it (eager, it is just slower); ``out_dtype=torch.uint8`` returns round(255 * y).

    >>> from src.models import exact_sobel_net
    >>> fused_torch(torch.zeros(1, 4, 6, 3, dtype=torch.uint8), **fused_weights(exact_sobel_net())).shape
    torch.Size([1, 1, 4, 6])
    """

    xf = x.permute(0, 3, 1, 2).float()  # (B, 3, H, W) view of channels-last pixels
    if mix is not None:
        z = torch.stack([sum(xf[:, c] * mix[m, c] for c in range(3)) for m in range(mix.shape[0])], 1)
    else:
        z = xf
    k = bank.shape[-1]
    r = k // 2
    H, W = z.shape[-2:]
    zp = pad_reflect101(z, r) if reflect else torch.nn.functional.pad(z, (r, r, r, r))
    resp = []
    for o in range(bank.shape[0]):
        acc = None
        for c in range(bank.shape[1]):
            for i in range(k):
                for j in range(k):
                    t = zp[:, c, i : i + H, j : j + W] * bank[o, c, i, j]
                    acc = t if acc is None else acc + t
        resp.append(acc)
    feats = [torch.sqrt(resp[i] * resp[i] + resp[pairs + i] * resp[pairs + i]) for i in range(pairs)]
    z = feats + resp[2 * pairs : 2 * pairs + linear]
    for li, (w, b) in enumerate(head):
        z = [sum((z[f] * w[o, f] for f in range(len(z))), b[o]) for o in range(w.shape[0])]
        if li < len(head) - 1:
            z = [torch.relu(t) for t in z]
    y = torch.stack(z, 1).clamp(0.0, 1.0)
    return y if out_dtype == torch.float32 else (y * 255.0).round().to(out_dtype)


@functools.lru_cache(maxsize=None)
def compiled_fused_torch() -> Callable:
    """:func:`fused_torch` through ``torch.compile`` (dynamic sizes: one compilation serves every image size)."""
    return torch.compile(fused_torch, dynamic=True)


def cuda_runner(net: nn.Module, download: str = "float32") -> Callable[[np.ndarray], np.ndarray] | None:
    """On CUDA: RGB uint8 ``(H, W, 3)`` -> ``(C, H, W)`` through the compiled kernel; None if unsupported.

    The upload is the uint8 image (3 bytes a pixel); ``download`` is ``"float32"`` (what ``predict``
    uses, exact) or ``"uint8"`` (round(255 * y), a quarter of the bytes back).
    """
    device = next(net.parameters(), torch.empty(0)).device
    weights = fused_weights(net)
    if weights is None or device.type != "cuda":
        return None
    if download not in ("float32", "uint8"):
        raise ValueError(f"download must be 'float32' or 'uint8', got {download!r}")
    out_dtype = torch.float32 if download == "float32" else torch.uint8
    fn = compiled_fused_torch()

    def run(rgb: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(rgb)).to(device, non_blocking=True)[None]
        with torch.inference_mode():
            return fn(x, **weights, out_dtype=out_dtype)[0].cpu().numpy()

    run.clamped = True
    return run



# ------------------------------------------------------------------------------- numba (one pass, CPU)
def numba_runner(net: nn.Module, threads: int | None = None, out_dtype=np.float32,
                 band_rows: int | None = None) -> Callable[[np.ndarray], np.ndarray] | None:
    """RGB uint8 ``(H, W, 3)`` -> ``(C, H, W)`` through the one-pass numba kernel (:mod:`src.kernels.compact`);
    None if numba is missing or ``net`` is not a plain eval :class:`CompactNet`. ``out_dtype``: float32 in [0, 1]
    (exact), or uint8 / uint16 holding ``round(y * 255)`` / ``round(y * 65535)``. ``threads``: numba threads
    (default: the usable cores; one for small images); bands go to whichever thread is free.

    >>> from src.models import exact_sobel_net
    >>> numba_runner(exact_sobel_net())(np.zeros((5, 7, 3), np.uint8)).shape
    (1, 5, 7)
    """
    try:
        import src.kernels.compact as fused_cpu  # optional dependency: numba
    except ImportError:
        return None
    plan = _cached_plan(net, None)
    if plan is None:
        return None
    run = fused_cpu.runner(plan, threads or available_cores(), threads is None, out_dtype, band_rows)
    run.finite = plan.bound < FINITE_BOUND
    run.whole_rows = True  # bands its own work: predict's tiles may span the image's width (no column cuts)
    return run
