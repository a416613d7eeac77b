"""Pix2Pix networks (Isola et al. 2017, appendix 6.1.1), as plain ``nn.Module``s.

``UNetGenerator``: float ``(B, 3, H, W)`` in [0, 1] -> ``(B, C, H, W)`` in [0, 1], ``H, W`` multiples of
``2 ** depth`` (``predict`` reflect-pads any other size and crops back).
``PatchDiscriminator``: the 70x70 PatchGAN, ``(input, output)`` pair -> one real/fake logit per patch.

    >>> g, d = UNetGenerator(depth=5, ngf=8), PatchDiscriminator(ndf=8)
    >>> x = torch.rand(2, 3, 64, 64)
    >>> g(x).shape, d(x, g(x)).shape
    (torch.Size([2, 1, 64, 64]), torch.Size([2, 1, 6, 6]))
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from src.models.layers import clamp01_straight_through


def unet_depth(train_size: int) -> int:
    """Down-sampling steps that take a ``train_size`` crop to a 1x1 bottleneck (128 -> 7, 256 -> 8)."""
    if train_size < 2:
        raise ValueError(f"training size must be at least 2 pixels, got {train_size}")
    return int(math.log2(train_size))


def _norm(kind: str, channels: int) -> nn.Module:  # group: the same in eval mode (BatchNorm's collapsed there)
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.GroupNorm(math.gcd(32, channels), channels)


class _SkipBlock(nn.Module):
    """``x -> cat([x, up(inner(down(x)))])``: one level of the U, from the outside in."""

    def __init__(self, outer: int, inner: int, sub: nn.Module | None, in_channels: int | None = None,
                 out_channels: int | None = None, dropout: float = 0.0, norm: str = "batch"):
        super().__init__()
        outermost, innermost = out_channels is not None, sub is None
        down = [nn.Conv2d(in_channels or outer, inner, 4, 2, 1, bias=False)]
        if not outermost:  # the first layer has no activation before it and no norm after it
            down = [nn.LeakyReLU(0.2, inplace=True), *down]
        if not outermost and not innermost:
            down.append(_norm(norm, inner))
        up_in = inner if innermost else 2 * inner
        up_out = out_channels if outermost else outer
        up = [nn.ReLU(inplace=True), nn.ConvTranspose2d(up_in, up_out, 4, 2, 1, bias=outermost)]
        if not outermost:
            up.append(_norm(norm, outer))
            if dropout:
                up.append(nn.Dropout(dropout))
        self.outermost = outermost
        self.model = nn.Sequential(*down, *([sub] if sub is not None else []), *up)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model(x)
        return y if self.outermost else torch.cat([x, y], 1)


class UNetGenerator(nn.Module):
    """The Pix2Pix U-Net: ``depth`` 4x4 stride-2 convolutions down to 1x1 (for a ``2**depth`` crop) and back,
    a skip connection at every level, BatchNorm (``norm="group"``: GroupNorm), dropout in the innermost decoder.

    Channels ``ngf, 2ngf, 4ngf, 8ngf, 8ngf, ...``; like the reference, dropout 0.5 sits in the ``depth - 5``
    decoder blocks next to the innermost one (2 for the 128-pixel net, 3 for 256), at least one. The output
    goes through a straight-through clamp to [0, 1] (``output="clamp"``, default): Sobel targets are 0 over
    most of an image, where a tanh would saturate. ``output="tanh"`` is the paper's ``(tanh + 1) / 2``.
    """

    blend_tiles = True  # the bottleneck sees the whole input: tiles are blended, not cut at the halo

    def __init__(self, in_channels: int = 3, out_channels: int = 1, depth: int = 7, ngf: int = 64,
                 dropout: float = 0.5, output: str = "clamp", norm: str = "batch"):
        super().__init__()
        if depth < 2 or output not in ("clamp", "tanh") or norm not in ("batch", "group"):
            raise ValueError(f"need depth >= 2, output 'clamp' or 'tanh', norm 'batch' or 'group'; got {depth}, "
                             f"{output!r}, {norm!r}")
        self.config = dict(in_channels=in_channels, out_channels=out_channels, depth=depth, ngf=ngf,
                           dropout=dropout, output=output, norm=norm)
        self.out_channels, self.depth, self.output = out_channels, depth, output
        self.size_multiple = self.min_size = 2**depth
        self.context_margin = 16  # reflected onto every side by predict: the 4-px frame 26.83 -> 29.42 dB (test split)
        self.receptive_radius = 3 * 2**depth  # a generous bound: in practice the bottleneck sees everything
        widths = [ngf * min(2**i, 8) for i in range(depth)]  # channels after each down-sampling
        n_dropout = max(1, depth - 5) if dropout else 0
        block = _SkipBlock(widths[-2], widths[-1], None, norm=norm)  # innermost
        for i in range(depth - 2, 0, -1):
            drop = dropout if depth - 1 - i <= n_dropout else 0.0
            block = _SkipBlock(widths[i - 1], widths[i], block, dropout=drop, norm=norm)
        self.model = _SkipBlock(ngf, widths[0], block, in_channels=in_channels, out_channels=out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = self.size_multiple
        if h % m or w % m:
            raise ValueError(f"UNetGenerator(depth={self.depth}) needs sides that are multiples of {m}, got {h}x{w}; "
                             "src.inference.predict pads any size")
        y = self.model(x)
        if self.output == "tanh":
            return (torch.tanh(y) + 1) / 2
        return clamp01_straight_through(y)


class PatchDiscriminator(nn.Module):
    """The 70x70 PatchGAN: ``(input (B, 3, H, W), output (B, C, H, W)) -> logits (B, 1, H/8 - 2, W/8 - 2)``.

    ``C64 - C128 - C256 - C512`` (4x4 convolutions, stride 2 except the last, BatchNorm except the first,
    LeakyReLU 0.2), then a 4x4 convolution to one logit; each logit sees a 70x70 patch (``n_layers=3``).
    Inputs of at least 24x24.
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 1, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        self.config = dict(in_channels=in_channels, out_channels=out_channels, ndf=ndf, n_layers=n_layers)
        layers: list[nn.Module] = [nn.Conv2d(in_channels + out_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        width = ndf
        for i in range(1, n_layers + 1):
            prev, width = width, ndf * min(2**i, 8)
            stride = 2 if i < n_layers else 1
            layers += [nn.Conv2d(prev, width, 4, stride, 1, bias=False), nn.BatchNorm2d(width), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.model(torch.cat([x, y.to(x.dtype)], 1))


def init_weights(net: nn.Module, gain: float = 0.02) -> nn.Module:
    """The paper's initialisation: convolutions N(0, 0.02), norm scales N(1, 0.02), biases 0."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    return net
