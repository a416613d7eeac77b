"""The bilateral grid's CPU runtime: the grid from the whole image, then the per-pixel slice in one numba pass.

The algorithm is :class:`~src.models.bilateral_grid.BilateralGridNet` (``grid_of`` + ``apply``, torch); this is its
schedule, the same toolkit as the compact net's (:mod:`src.inference.fused_cpu`). The stream's input is box-averaged
from uint8 in numba; the stream runs in torch, channels-last, so its output is already cell-major and reaches the
slice without a copy; the slice writes pixel-major float32, which ``predict`` returns as it is.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from src.models.bilateral_grid import BilateralGridNet


def guide_weights(net: BilateralGridNet) -> tuple[np.ndarray, ...]:
    """The guide's two 1x1 layers as float32 arrays ``(w1 (hidden, 3), b1, w2 (1, hidden), b2)``."""
    first, last = net.guide[0], net.guide[2]
    with torch.no_grad():
        return (first.weight[:, :, 0, 0].float().numpy().copy(), first.bias.float().numpy().copy(),
                last.weight[:, :, 0, 0].float().numpy().copy(), last.bias.float().numpy().copy())


def grid_cells(net: nn.Module, rgb: np.ndarray) -> np.ndarray:
    """A :class:`BilateralGridNet`'s grid of the whole image ``rgb`` (uint8), cell-major ``(GH, GW, bins, K)``
    for :func:`grid_slicer`: the stream's input box-averaged from uint8 in numba (``cell`` grids), the stream in
    torch, channels-last so that its output is already cell-major (no copy of a grid as large as the output)."""
    import src.inference.fused_cpu as fused_cpu  # optional dependency: numba (callers check grid_slicer first)

    if net.cell:
        eh, ew = net.extent(rgb.shape[:2])
        small = np.empty((3, eh // net.down, ew // net.down), np.float32)
        fused_cpu.box_down(np.ascontiguousarray(rgb), net.down, small)
        small = torch.from_numpy(small)[None]
    else:
        small = net.shrink(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float().div_(255.0))
    stats = None
    if net.stats:
        w1, b1, w2, b2 = guide_weights(net)
        gh, gw = net.extent(rgb.shape[:2])
        stats = np.empty((4, net.bins, gh // net.cell, gw // net.cell), np.float32)
        fused_cpu.bin_stats(np.ascontiguousarray(rgb), w1, b1, w2, b2, net.cell, stats)
        stats = torch.from_numpy(stats).view(1, 4 * net.bins, *stats.shape[2:])
        stats = stats.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        coeffs = net.coefficients(small.contiguous(memory_format=torch.channels_last), stats)[0]
    _, gh, gw = coeffs.shape
    return np.ascontiguousarray(coeffs.permute(1, 2, 0).float().numpy()).reshape(gh, gw, net.bins, net.n_coeffs)


def grid_slicer(net: nn.Module) -> Callable | None:
    """``slice(cells, rgb_tile, offset, size) -> (C, h, w)`` in [0, 1]: a :class:`BilateralGridNet`'s per-pixel
    work (guide, trilinear lookup, affine) in one numba pass (:func:`src.inference.fused_cpu.slice_affine`); None
    if numba is missing or ``net`` is not an eval-mode grid net on the CPU. ``cells``: :func:`grid_cells`'s."""
    if type(net) is not BilateralGridNet or net.training or next(net.parameters()).device.type != "cpu":
        return None
    try:
        import src.inference.fused_cpu as fused_cpu  # optional dependency: numba
    except ImportError:
        return None
    w1, b1, w2, b2 = guide_weights(net)

    def run(cells: np.ndarray, rgb: np.ndarray, offset: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
        out = np.empty((*rgb.shape[:2], net.out_channels), np.float32)  # pixel-major: predict returns it as is
        fused_cpu.slice_affine(np.ascontiguousarray(rgb), cells, w1, b1, w2, b2, out, offset[0], offset[1],
                               *net.extent(size))
        return out.transpose(2, 0, 1)

    return run


def grid_runner(net: nn.Module) -> Callable[[np.ndarray], np.ndarray] | None:
    """RGB uint8 ``(H, W, 3)`` -> ``(C, H, W)`` for a :class:`BilateralGridNet` on the CPU: the grid from the whole
    image (:func:`grid_cells`), the full-resolution slice in numba; None where :func:`grid_slicer` is."""
    slicer = grid_slicer(net)
    if slicer is None:
        return None

    def run(rgb: np.ndarray) -> np.ndarray:
        return slicer(grid_cells(net, rgb), rgb, (0, 0), rgb.shape[:2])

    run.clamped = True
    return run
