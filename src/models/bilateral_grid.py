"""A bilateral grid of affine colour transforms (HDRNet: Gharbi et al., "Deep Bilateral Learning for Real-Time
Image Enhancement", SIGGRAPH 2017), for full-resolution operators that look far.

Two parts, as in the paper: a **low-resolution stream** predicts a grid of cells x ``bins`` intensity bins, each
holding an affine transform (``out_channels`` x 4 coefficients: a 3-vector and an offset per output channel); a
**guide** (a per-pixel 1x1 network at full resolution) maps each pixel to an intensity in [0, 1]. Each output pixel
is then one trilinear lookup of the grid at (x, y, guide) and one affine transform of the pixel's RGB.

The grid's cells, two ways:

- ``cell=8`` (the default): one cell per ``cell`` x ``cell`` pixels, the stream seeing the image box-averaged by
  ``down`` and (``stats``) each cell's colours per guide bin. The operators learnt here are defined in pixels, so
  a model trained on 256-px crops meets the same cell size on a 12 MP photo (docs/guide.md: the measurements).
- ``cell=0``: the paper's form, the whole image resized to ``low_res`` x ``low_res``, a ``grid`` x ``grid`` grid.

The grid is computed once per image (:meth:`grid_of`), then sliced per tile (:meth:`apply`): tiled = whole. The
slice uses gathers (no 5-D ``grid_sample``), the plain twin of :mod:`src.kernels.grid`. It starts as the identity.

>>> net = BilateralGridNet(out_channels=3).eval()
>>> net(torch.rand(1, 3, 7, 9)).shape
torch.Size([1, 3, 7, 9])
>>> with torch.no_grad():  # the identity at start
...     float((net(x := torch.rand(1, 3, 5, 6)) - x).abs().max()) < 1e-6
True
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

GRAY = (0.299, 0.587, 0.114)  # BT.601, as the filters' gray conversion


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.ReLU(inplace=True))


class BilateralGridNet(nn.Module):
    """``(B, 3, H, W) -> (B, C, H, W)``: a low-resolution stream predicts a bilateral grid of affine transforms,
    a per-pixel guide slices it, each pixel gets its transform. Any ``H, W >= 1``."""

    min_size = 1
    receptive_radius = 0  # per pixel at full resolution: the grid carries the context (see whole_image_context)
    whole_image_context = True  # predict() computes the grid from the whole image, then slices tile by tile

    @property
    def onnx_unsupported(self) -> str:
        """Why :func:`~src.inference.export.export_onnx` refuses this network (the slicing itself is exportable)."""
        if self.cell:  # the padding to whole cells and the grid's size are Python ints of the input's shape
            return (f"its grid has one cell per {self.cell} px of the image, a shape computation that a traced ONNX "
                    "graph freezes to the size it was exported at")
        return ("torch's ONNX exporter (opset 17, TorchScript) has no operator for the antialiased resize of "
                "its low-resolution stream (aten::_upsample_bilinear2d_aa)")

    def __init__(self, in_channels: int = 3, out_channels: int = 3, grid: int = 16, bins: int = 16,
                 low_res: int = 256, width: int = 16, guide_width: int = 16, cell: int = 8, down: int = 4,
                 stats: bool = True):
        super().__init__()
        if in_channels != 3:
            raise ValueError(f"in_channels must be 3 (RGB), got {in_channels}")
        ratio = cell // down if cell else low_res // grid  # low-resolution pixels per cell side
        levels = ratio.bit_length() - 1
        if cell and (cell % down or 2**levels * down != cell or levels < 1):
            raise ValueError(f"cell must be down times a power of two >= 2, got {cell} and {down}")
        if not cell and (low_res % grid or 2**levels * grid != low_res or levels < 1):
            raise ValueError(f"low_res must be grid times a power of two >= 2, got {low_res} and {grid}")
        stats = bool(stats and cell)  # the bins' statistics are per cell: the fixed-size cells only
        self.config = dict(in_channels=in_channels, out_channels=out_channels, grid=grid, bins=bins,
                           low_res=low_res, width=width, guide_width=guide_width, cell=cell, down=down, stats=stats)
        self.out_channels, self.grid_cells, self.bins, self.low_res = out_channels, grid, bins, low_res
        self.cell, self.down, self.stats = cell, down, stats
        self.n_coeffs = out_channels * 4
        # splat: stride-2 convolutions from low_res down to grid x grid
        chans, layers = in_channels, []
        for i in range(levels):
            layers.append(_conv(chans, width * 2**i, stride=2))
            chans = width * 2**i
        self.splat = nn.Sequential(*layers)
        self.local = nn.Sequential(_conv(chans + (4 * bins if stats else 0), chans), nn.Conv2d(chans, chans, 3, padding=1))
        # global path: two more stride-2 convolutions, pooled, then fully connected
        self.global_convs = nn.Sequential(_conv(chans, chans, 2), _conv(chans, chans, 2))
        self.global_fc = nn.Sequential(nn.Linear(chans, chans), nn.ReLU(inplace=True), nn.Linear(chans, chans))
        self.to_grid = nn.Conv2d(chans, bins * self.n_coeffs, 1)
        self.guide = nn.Sequential(nn.Conv2d(3, guide_width, 1), nn.ReLU(inplace=True), nn.Conv2d(guide_width, 1, 1))
        self._start_at_the_trivial_answer()
        self._start_the_guide_at_luma()

    def _start_the_guide_at_luma(self) -> None:
        """The guide starts as BT.601 luma (to ~1e-2): unit j is ``relu(luma - j / n)``, the output layer the
        least-squares fit of ``logit(luma)`` by those ramps (a random guide's bins split colours arbitrarily)."""
        first, last = self.guide[0], self.guide[2]
        n = first.out_channels
        knots = np.arange(n) / n  # numpy: the network may be built on the meta device (load_model)
        luma = np.linspace(0.005, 0.995, 512)
        ramps = np.concatenate([np.maximum(luma[:, None] - knots[None], 0), np.ones((512, 1))], 1)
        fit = np.linalg.lstsq(ramps, np.log(luma / (1 - luma)), rcond=None)[0]
        with torch.no_grad():
            first.weight.copy_(torch.tensor(GRAY)[None, :, None, None].expand(n, 3, 1, 1))
            first.bias.copy_(torch.tensor(-knots, dtype=torch.float32))
            last.weight.copy_(torch.tensor(fit[:n], dtype=torch.float32).view(1, n, 1, 1))
            last.bias.fill_(float(fit[n]))

    def _start_at_the_trivial_answer(self) -> None:
        """Every cell's transform starts as the identity (3 out) or BT.601 gray (1 out), the same in every bin."""
        nn.init.zeros_(self.to_grid.weight)
        a = torch.zeros(self.out_channels, 4)
        a[:, :3] = torch.eye(3) if self.out_channels == 3 else torch.tensor(GRAY)
        with torch.no_grad():
            self.to_grid.bias.copy_(a.flatten().repeat(self.bins))

    def shrink(self, x: torch.Tensor) -> torch.Tensor:
        """What the low-resolution stream sees of ``x`` ``(B, 3, H, W)``."""
        if self.cell:  # cells of a fixed size in pixels: the image padded to whole cells, box-averaged by `down`
            (H, W), (eh, ew) = x.shape[-2:], self.extent(tuple(x.shape[-2:]))
            x = F.pad(x, (0, ew - W, 0, eh - H), mode="replicate") if (eh, ew) != (H, W) else x
            return F.avg_pool2d(x, self.down) if self.down > 1 else x
        # antialias always (it only matters when shrinking), so a traced export does not freeze the choice
        return F.interpolate(x, size=(self.low_res, self.low_res), mode="bilinear", align_corners=False, antialias=True)

    def bin_stats(self, x: torch.Tensor) -> torch.Tensor:
        """Per cell and guide bin, ``(B, 3, H, W) -> (B, 4 * bins, gh, gw)``: mean colour (channel ``c * bins + z``;
        0 if empty) and share of the cell's pixels (``3 * bins + z``), each pixel in its two nearest bins: a
        bilateral grid's splat (Chen et al. 2007), which the box-averaged image mixes (docs/guide.md says why)."""
        b, _, h, w = x.shape
        (eh, ew), d = self.extent((h, w)), self.bins
        gh, gw = eh // self.cell, ew // self.cell
        with torch.no_grad():
            z = (self.guide(x).sigmoid()[:, 0] * d - 0.5).clamp(0, d - 1)  # (B, H, W)
            z0 = z.floor()
            wz, z0 = (z - z0)[:, None], z0.long()
            z1 = (z0 + 1).clamp(max=d - 1)
            cy, cx = torch.arange(h, device=x.device) // self.cell, torch.arange(w, device=x.device) // self.cell
            cells = (cy[:, None] * gw + cx[None, :])[None]  # (1, H, W)
            values = torch.cat([x, torch.ones_like(x[:, :1])], 1)  # (B, 4, H, W)
            sums = x.new_zeros(b, 4, d * gh * gw)
            for zi, wi in ((z0, 1 - wz), (z1, wz)):
                index = (zi * (gh * gw) + cells).view(b, 1, h * w).expand(b, 4, h * w)
                sums.scatter_add_(2, index, (values * wi).view(b, 4, h * w))
            sums = sums.view(b, 4, d, gh, gw)
            count = sums[:, 3:]
            means = torch.where(count > 0, sums[:, :3] / count.clamp_min(1e-12), torch.zeros_like(sums[:, :3]))
            return torch.cat([means, count / (self.cell * self.cell)], 1).view(b, 4 * d, gh, gw)

    def coefficients(self, small: torch.Tensor, stats: torch.Tensor | None = None) -> torch.Tensor:
        """The stream: ``shrink(x)``, ``bin_stats(x)`` -> ``(B, bins * n_coeffs, gh, gw)`` (``bin * n_coeffs + k``)."""
        return self.to_grid(self.cell_features(small, stats))

    def cell_features(self, small: torch.Tensor, stats: torch.Tensor | None = None, room: bool = False) -> torch.Tensor:
        """The stream before ``to_grid`` (a 1x1 layer to each cell's coefficients): ``(B, width', gh, gw)``. ``room``:
        ``stats`` starts with ``width'`` spare channels, which this fills with the splat's features (no copy)."""
        features = self.splat(small)
        if room and stats is not None:
            stats[:, : features.shape[1]] = features
        local = self.local(features if stats is None else stats if room else torch.cat([features, stats], 1))
        pooled = self.global_convs(features).mean(dim=(2, 3))
        return F.relu(local + self.global_fc(pooled)[:, :, None, None])

    def grid_of(self, x: torch.Tensor) -> torch.Tensor:
        """The bilateral grid of the whole image ``x`` ``(B, 3, H, W)``: ``(B, n_coeffs, bins, gh, gw)``."""
        grid = self.coefficients(self.shrink(x), self.bin_stats(x) if self.stats else None)
        b, _, gh, gw = grid.shape
        return grid.view(b, self.bins, self.n_coeffs, gh, gw).transpose(1, 2).contiguous()

    def extent(self, size: tuple[int, int]) -> tuple[int, int]:
        """The span in pixels that the grid covers for an image of ``size`` ``(H, W)``: the image itself, or (with
        ``cell``) the image padded to whole cells. Slicing maps this span onto the grid's cells."""
        return (-(-size[0] // self.cell) * self.cell, -(-size[1] // self.cell) * self.cell) if self.cell else size

    def apply(self, grid: torch.Tensor, x: torch.Tensor, offset: tuple[int, int] = (0, 0),
              size: tuple[int, int] | None = None) -> torch.Tensor:
        """Slice ``grid`` at each pixel of ``x`` (a tile at ``offset`` of an image of ``size``, default the tile
        itself) and apply the transforms: ``(B, 3, h, w) -> (B, C, h, w)``."""
        coeffs = slice_grid(grid, self.guide(x).sigmoid(), offset, self.extent(size or tuple(x.shape[-2:])))
        a = coeffs.view(x.shape[0], self.out_channels, 4, *x.shape[-2:])
        return (a[:, :, :3] * x[:, None]).sum(2) + a[:, :, 3]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.apply(self.grid_of(x), x)


def slice_grid(grid: torch.Tensor, guide: torch.Tensor, offset: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """Trilinear lookup: ``grid`` ``(B, K, D, G, G)`` at each pixel of a tile (its ``guide`` ``(B, 1, h, w)`` in
    [0, 1]; the tile at ``offset`` of an image of ``size``) -> ``(B, K, h, w)``.

    Cell centres sit at ``(i + 0.5) / G`` of the image and ``(d + 0.5) / D`` of the guide's range; a pixel
    centre's coordinates are clamped to the outermost centres (the grid's edge value extends outwards).
    """
    b, k, depth, gh, gw = grid.shape
    (h, w), (H, W), dev = guide.shape[-2:], size, grid.device
    ys = ((torch.arange(h, device=dev, dtype=grid.dtype) + offset[0] + 0.5) / H * gh - 0.5).clamp(0, gh - 1)
    xs = ((torch.arange(w, device=dev, dtype=grid.dtype) + offset[1] + 0.5) / W * gw - 0.5).clamp(0, gw - 1)
    zs = (guide[:, 0] * depth - 0.5).clamp(0, depth - 1)  # (B, h, w)
    y0, x0, z0 = ys.floor().long(), xs.floor().long(), zs.floor().long()
    y1, x1, z1 = (y0 + 1).clamp(max=gh - 1), (x0 + 1).clamp(max=gw - 1), (z0 + 1).clamp(max=depth - 1)
    fy, fx, fz = (ys - y0)[None, :, None], (xs - x0)[None, None, :], zs - z0  # broadcast to (B, h, w)
    flat = grid.reshape(b, k, depth * gh * gw)
    out = 0.0
    for zi, wz in ((z0, 1 - fz), (z1, fz)):
        for yi, wy in ((y0, 1 - fy), (y1, fy)):
            for xi, wx in ((x0, 1 - fx), (x1, fx)):
                index = (zi * gh + yi[None, :, None]) * gw + xi[None, None, :]  # (B, h, w)
                corner = flat.gather(2, index.reshape(b, 1, h * w).expand(b, k, h * w)).view(b, k, h, w)
                out = out + corner * (wz * wy * wx)[:, None]
    return out
