"""Guided upsampling (the deep guided filter: Wu, Zheng, Zhang & Huang, "Fast End-to-End Trainable Guided Filter",
CVPR 2018), for operators that a bilateral grid's per-bin transforms cannot express: a network at low resolution
computes the operator's output, a colour guided filter (He, Sun & Tang 2010) fits each low-resolution neighbourhood
of that output as an affine function of its colour, and those affine maps, upsampled, are applied to the
full-resolution pixels. The edges come from the photo itself; the low-resolution network only has to get the look.

- ``scale``: the low resolution is the image box-averaged by ``scale`` (padded to whole boxes), as the grid's
  stream input; each box is then one cell of a grid with a single bin, holding ``C x 4`` coefficients.
- the low-resolution network: a CAN (``width`` x ``depth``, receptive field ``scale`` times its own in pixels);
- the fit: box means of radius ``radius`` (low-resolution pixels), ``eps`` added to the colour covariance (learnt,
  in log space), the 3x3 systems solved in closed form, the coefficients box-averaged again (the guided filter's
  last step).

Per pixel at full resolution this is the bilateral grid's slice with one bin (a bilinear lookup of ``C x 4``
coefficients, one affine transform of the pixel's RGB): ``predict`` runs it on the grid's numba slice
(:mod:`src.inference.grid_runtime`), computes the coefficients once from the whole image and slices tile by tile,
so tiled = whole. At start a colour network is close to the identity (the CAN's residual start: ``A = I``, ``b = 0``
but for ``eps``), a gray one gives zeros.

>>> net = GuidedUpsamplingNet(out_channels=3).eval()
>>> net(torch.rand(1, 3, 7, 9)).shape
torch.Size([1, 3, 7, 9])
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from src.models.bilateral_grid import slice_grid
from src.models.can import ContextAggregationNet


def box_mean(t: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over each ``(2r + 1)^2`` window, edges replicated: ``(B, C, h, w) -> (B, C, h, w)``."""
    if r == 0:
        return t
    return F.avg_pool2d(F.pad(t, (r, r, r, r), mode="replicate"), 2 * r + 1, stride=1)


def guided_fit(guide: torch.Tensor, target: torch.Tensor, r: int, eps: torch.Tensor) -> torch.Tensor:
    """The colour guided filter's coefficients: per pixel of ``guide`` ``(B, 3, h, w)`` the affine map
    ``target ~ A @ guide + b`` fitted over its window by ridge regression, box-averaged: ``(B, C, 4, h, w)``
    (``A``'s row, then ``b``, per output channel of ``target`` ``(B, C, h, w)``)."""
    mi, mt = box_mean(guide, r), box_mean(target, r)
    pairs = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
    cov = {(i, j): box_mean(guide[:, i : i + 1] * guide[:, j : j + 1], r) - mi[:, i : i + 1] * mi[:, j : j + 1]
           for i, j in pairs}
    a, b, c = cov[0, 0] + eps, cov[0, 1], cov[0, 2]
    d, e, f = cov[1, 1] + eps, cov[1, 2], cov[2, 2] + eps
    # the symmetric 3x3 inverse by cofactors, elementwise over the batch and the pixels
    c00, c01, c02 = d * f - e * e, c * e - b * f, b * e - c * d
    c11, c12, c22 = a * f - c * c, b * c - a * e, a * d - b * b
    det = a * c00 + b * c01 + c * c02
    inv = [[c00, c01, c02], [c01, c11, c12], [c02, c12, c22]]
    xt = [box_mean(guide[:, i : i + 1] * target, r) - mi[:, i : i + 1] * mt for i in range(3)]  # (B, C, h, w) each
    A = [sum(xt[j] * inv[j][i] for j in range(3)) / det for i in range(3)]
    offset = mt - sum(A[i] * mi[:, i : i + 1] for i in range(3))
    return box_mean(torch.stack([*A, offset], 2).flatten(1, 2), r).unflatten(1, (target.shape[1], 4))


class GuidedUpsamplingNet(nn.Module):
    """``(B, 3, H, W) -> (B, C, H, W)``: a CAN on the image shrunk by ``scale``, its output fitted per neighbourhood
    as an affine map of the colour (guided filter), the maps upsampled and applied per pixel. Any ``H, W >= 1``."""

    min_size = 1
    receptive_radius = 0  # per pixel at full resolution: the low-resolution network carries the context
    whole_image_context = True  # predict() computes the coefficients from the whole image, then slices tile by tile
    bins = 1  # as a bilateral grid: one intensity bin
    onnx_unsupported = ("its low-resolution size is a Python int of the input's shape, which a traced ONNX graph "
                        "freezes to the size it was exported at")

    def __init__(self, in_channels: int = 3, out_channels: int = 3, scale: int = 4, width: int = 24, depth: int = 5,
                 radius: int = 1, eps: float = 1e-3):
        super().__init__()
        if in_channels != 3:
            raise ValueError(f"in_channels must be 3 (RGB), got {in_channels}")
        if scale < 1 or radius < 0 or not eps > 0:
            raise ValueError(f"scale must be >= 1, radius >= 0 and eps > 0, got {scale}, {radius}, {eps}")
        self.config = dict(in_channels=in_channels, out_channels=out_channels, scale=scale, width=width, depth=depth,
                           radius=radius, eps=eps)
        self.out_channels, self.scale, self.radius = out_channels, scale, radius
        self.n_coeffs = out_channels * 4
        self.low = ContextAggregationNet(3, out_channels, width=width, depth=depth)
        self.log_eps = nn.Parameter(torch.tensor(math.log(eps)))
        if not self.low.residual:  # one output channel: start at zeros, the trivial answer of a gray filter
            nn.init.zeros_(self.low.head.weight)
            nn.init.zeros_(self.low.head.bias)

    def extent(self, size: tuple[int, int]) -> tuple[int, int]:
        """The image padded to whole ``scale`` x ``scale`` boxes: the span the coefficients cover."""
        return -(-size[0] // self.scale) * self.scale, -(-size[1] // self.scale) * self.scale

    def shrink(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, 3, H, W)`` replicate-padded to whole boxes and box-averaged by ``scale``."""
        (H, W), (eh, ew) = x.shape[-2:], self.extent(tuple(x.shape[-2:]))
        x = F.pad(x, (0, ew - W, 0, eh - H), mode="replicate") if (eh, ew) != (H, W) else x
        return F.avg_pool2d(x, self.scale) if self.scale > 1 else x

    def coefficients_of(self, small: torch.Tensor) -> torch.Tensor:
        """From the shrunk image ``(B, 3, h, w)``: the upsampling's coefficients ``(B, C * 4, h, w)``."""
        return guided_fit(small, self.low(small), self.radius, self.log_eps.exp()).flatten(1, 2)

    def grid_of(self, x: torch.Tensor) -> torch.Tensor:
        """The coefficients of the whole image ``x`` as a one-bin bilateral grid ``(B, C * 4, 1, h, w)``."""
        return self.coefficients_of(self.shrink(x))[:, :, None]

    def apply(self, grid: torch.Tensor, x: torch.Tensor, offset: tuple[int, int] = (0, 0),
              size: tuple[int, int] | None = None) -> torch.Tensor:
        """Upsample ``grid`` (bilinear, cell centres as the bilateral grid's) at each pixel of the tile ``x`` at
        ``offset`` of an image of ``size`` and apply the affine maps: ``(B, 3, h, w) -> (B, C, h, w)``."""
        flat = x.new_zeros(x.shape[0], 1, *x.shape[-2:])  # one bin: the guide's value does not matter
        coeffs = slice_grid(grid, flat, offset, self.extent(size or tuple(x.shape[-2:])))
        a = coeffs.view(x.shape[0], self.out_channels, 4, *x.shape[-2:])
        return (a[:, :, :3] * x[:, None]).sum(2) + a[:, :, 3]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.apply(self.grid_of(x), x)
