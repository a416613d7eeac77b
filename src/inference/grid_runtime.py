"""The bilateral grid's CPU runtime: the grid from the whole image, then the per-pixel slice in one numba pass.

The algorithm is :class:`~src.models.bilateral_grid.BilateralGridNet` (``grid_of`` + ``apply``, torch); this is its
schedule, with the kernels of :mod:`src.kernels.grid` (numba, as the compact net's :mod:`src.kernels.compact`). The
stream's input and the bins' statistics are written channels-last by numba, so the stream's convolutions (torch)
read them without a copy (the statistics leave room for the splat's features: no concatenation). The last 1x1
layer (``to_grid``) is left to the slice, which applies it to each cell row as its rows reach it: the grid (3 floats
a pixel at 8-px cells, 50 MB at 4 MP) is never stored, and writing it was a third of the time.
"""
from __future__ import annotations

import copy
import threading
from typing import Callable, NamedTuple

import numba
import numpy as np
import torch
import torch.nn as nn

from src.errors import NonFiniteOutput
from src.inference.runtime import kept
from src.models.bilateral_grid import BilateralGridNet
from src.models.guided import GuidedUpsamplingNet


def guide_weights(net: BilateralGridNet) -> tuple[np.ndarray, ...]:
    """The guide's two 1x1 layers as float32 arrays ``(w1 (hidden, 3), b1, w2 (1, hidden), b2)``."""
    first, last = net.guide[0], net.guide[2]
    with torch.no_grad():
        return (first.weight[:, :, 0, 0].float().numpy().copy(), first.bias.float().numpy().copy(),
                last.weight[:, :, 0, 0].float().numpy().copy(), last.bias.float().numpy().copy())


def _channels_last(a: np.ndarray) -> torch.Tensor:
    """``(h, w, c)`` numpy -> ``(1, c, h, w)`` torch in channels-last memory (a view)."""
    return torch.from_numpy(a).permute(2, 0, 1)[None]


NO_GUIDE = np.empty((0, 0), np.float32)  # the kernels' "not kept": compute the guide
_SCRATCH = threading.local()
SCRATCH_BYTES = 64 << 20  # larger intermediates are allocated per call (held memory stays bounded)


def _scratch(name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A float32 array of ``shape`` kept per thread for the next call of the same size: fresh memory costs a page
    fault per 4 KB on first touch, and on the build machine that was a third of the statistics' pass at 4 MP."""
    kept = getattr(_SCRATCH, name, None)
    if kept is None or kept.shape != shape:
        kept = np.empty(shape, np.float32)
        if kept.nbytes <= SCRATCH_BYTES:
            setattr(_SCRATCH, name, kept)
    return kept


def _channels_last_copy(net: nn.Module) -> nn.Module:
    """``net`` with channels-last weights, so each convolution's output stays channels-last (with the weights as
    they are, oneDNN returns NCHW and every next layer converts: 2x slower). Kept until ``net`` changes."""
    return kept(net, "channels-last", lambda: copy.deepcopy(net).to(memory_format=torch.channels_last))


class Grid(NamedTuple):
    """A bilateral grid in factored form, for :func:`grid_slicer`: each cell's stream features ``(GH, GW, F)``
    before the last 1x1 layer (``to_grid``), which the slice applies as it reaches each cell row (16 floats a cell
    instead of ``bins * K``); ``zmap``: each pixel's bin coordinate ``(H, W)`` when kept (the guide is then
    computed once; per-thread scratch, valid until this thread's next :func:`grid_features`), else None."""

    features: np.ndarray
    zmap: np.ndarray | None = None


def grid_features(net: nn.Module, rgb: np.ndarray, keep_guide: bool = False) -> Grid:
    """A :class:`BilateralGridNet`'s grid of the whole image ``rgb`` (uint8); ``keep_guide``: keep each pixel's bin
    coordinate for a whole-image slice (with the bins' statistics, which compute it; 4 bytes a pixel). A
    :class:`GuidedUpsamplingNet`'s coefficients are its features (sliced with an identity last layer)."""
    import src.kernels.grid as kernels  # optional dependency: numba (callers check grid_slicer first)

    rgb = np.ascontiguousarray(rgb)
    if type(net) is GuidedUpsamplingNet:
        eh, ew = net.extent(rgb.shape[:2])
        small = _scratch("small", (eh // net.scale, ew // net.scale, 3))
        kernels.box_down(rgb, net.scale, small)
        with torch.inference_mode():
            coeffs = _channels_last_copy(net).coefficients_of(_channels_last(small).contiguous(
                memory_format=torch.channels_last))
            return Grid(np.ascontiguousarray(coeffs[0].permute(1, 2, 0).float().numpy()))
    if net.cell:
        eh, ew = net.extent(rgb.shape[:2])
        small = _scratch("small", (eh // net.down, ew // net.down, 3))
        kernels.box_down(rgb, net.down, small)
        small = _channels_last(small)
    else:
        small = net.shrink(torch.from_numpy(rgb).permute(2, 0, 1)[None].float().div_(255.0))
    stream = _channels_last_copy(net)
    chans, stats, zmap = net.to_grid.in_channels, None, None
    if net.stats:
        gh, gw = (n // net.cell for n in net.extent(rgb.shape[:2]))
        stats = _scratch("stats", (gh, gw, chans + 4 * net.bins))  # room for the splat's features first
        zmap = _scratch("zmap", rgb.shape[:2]) if keep_guide else None
        kernels.bin_stats(rgb, *guide_weights(net), net.cell, stats[:, :, chans:], NO_GUIDE if zmap is None else zmap)
        stats = _channels_last(stats)
    with torch.inference_mode():
        features = stream.cell_features(small.contiguous(memory_format=torch.channels_last), stats, room=True)
        return Grid(np.ascontiguousarray(features[0].permute(1, 2, 0).float().numpy()), zmap)


def grid_slicer(net: nn.Module) -> Callable | None:
    """``slice(grid, rgb_tile, offset, size) -> (C, h, w)`` in [0, 1]: a :class:`BilateralGridNet`'s per-pixel
    work (guide, trilinear lookup, affine) in one numba pass (:func:`src.kernels.grid.slice_affine`);
    None if numba is missing or ``net`` is not an eval-mode grid net on the CPU. ``grid``: :func:`grid_features`'s."""
    if type(net) not in (BilateralGridNet, GuidedUpsamplingNet) or net.training:
        return None
    if next(net.parameters()).device.type != "cpu":
        return None
    try:
        import src.kernels.grid as kernels  # optional dependency: numba
    except ImportError:
        return None
    if type(net) is GuidedUpsamplingNet:  # one bin, the coefficients themselves: no guide, an identity last layer
        guide = (np.zeros((1, 3), np.float32), np.zeros(1, np.float32), np.zeros((1, 1), np.float32),
                 np.zeros(1, np.float32))
        layer, bias = np.eye(net.n_coeffs, dtype=np.float32), np.zeros(net.n_coeffs, np.float32)
    else:
        guide = guide_weights(net)
        with torch.no_grad():
            layer = net.to_grid.weight.view(net.to_grid.out_channels, -1).t().float().numpy().copy()  # (F, bins * K)
            bias = net.to_grid.bias.float().numpy().copy()

    def check_finite(grid: Grid) -> None:
        """Raise :class:`NonFiniteOutput` unless every pixel's output is finite, from the grid alone (not the image):
        each coefficient is a convex blend of the grid's, at most ``max|bias| + sum_c max|f_c| max|w_c|``, and an
        output is four of them times values in [0, 1] (the guide's weights are finite once loaded)."""
        peaks = np.abs(grid.features).reshape(-1, grid.features.shape[-1]).max(axis=0, initial=0.0).astype(np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            bound = float(peaks @ np.abs(layer).max(axis=1) + np.abs(bias).max())
        if not 4 * bound < np.finfo(np.float32).max:  # NaN fails this too
            raise NonFiniteOutput(f"the grid's coefficients reach {bound:.3g}: the network's output would hold NaN or "
                                  "infinite values (nothing written)")

    def run(grid: Grid, rgb: np.ndarray, offset: tuple[int, int], size: tuple[int, int],
            out: np.ndarray | None = None) -> np.ndarray:
        (h, w), (y, x) = rgb.shape[:2], offset
        zmap = NO_GUIDE if grid.zmap is None else grid.zmap[y : y + h, x : x + w]
        if out is None:
            out = np.empty((h, w, net.out_channels), np.float32)  # pixel-major: predict returns it as is
        elif out.shape != (h, w, net.out_channels) or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous float32 array of shape {(h, w, net.out_channels)}, got "
                             f"{out.dtype} {out.shape}")
        chunks = max(1, min(h, 4 * numba.get_num_threads()))  # runs of rows: 4 a thread, to balance
        kernels.slice_affine(np.ascontiguousarray(rgb), grid.features, layer, bias, net.bins, *guide, zmap, out, y, x,
                             *net.extent(size), chunks)
        return out.transpose(2, 0, 1)

    run.check_finite = check_finite
    return run


def grid_runner(net: nn.Module) -> Callable[[np.ndarray], np.ndarray] | None:
    """RGB uint8 ``(H, W, 3)`` -> ``(C, H, W)`` for a :class:`BilateralGridNet` on the CPU: the grid from the whole
    image (:func:`grid_features`), the full-resolution slice in numba; None where :func:`grid_slicer` is."""
    slicer = grid_slicer(net)
    if slicer is None:
        return None

    def run(rgb: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        grid = grid_features(net, rgb, keep_guide=True)
        slicer.check_finite(grid)
        return slicer(grid, rgb, (0, 0), rgb.shape[:2], out)

    run.clamped = run.finite = True  # finite: checked on the grid, not pixel by pixel
    run.out_layout = "hwc"  # run(rgb, out=...) writes an (H, W, C) array in place
    return run
