"""The context-aggregation network (Chen, Xu & Koltun, "Fast Image Processing with Fully-Convolutional
Networks", ICCV 2017), for operators that look far: stylization, detail enhancement, edge-preserving
smoothing.

``depth`` 3x3 layers of ``width`` channels with dilations ``1, 2, 4, ..., 2^(depth-3), 1``, each
followed by an adaptive normalisation ``a * x + b * BN(x)`` and a leaky ReLU (slope 0.2), then a 1x1
linear layer to the output channels. The receptive field grows exponentially with depth: the default
(``depth=7``) sees 65 x 65 pixels. Every layer reflect-101 pads by its dilation, so any input size
>= 1 x 1 keeps its size, and tiled inference with a halo of ``receptive_radius`` equals the whole image.
When input and output both have 3 channels the network predicts the change to the input (a residual),
which is what these operators mostly are.

>>> net = ContextAggregationNet(out_channels=3).eval()
>>> net(torch.rand(1, 3, 7, 9)).shape
torch.Size([1, 3, 7, 9])
>>> 2 * net.receptive_radius + 1  # the receptive field, pixels
65
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from src.filters.functional import pad_reflect101
from src.models.layers import clamp01_straight_through


def dilations(depth: int) -> list[int]:
    """Dilations of the 3x3 layers: ``1, 2, 4, ..., 2^(depth-3), 1`` (``depth - 1`` layers).

    >>> dilations(7)
    [1, 2, 4, 8, 16, 1]
    """
    return [2**i for i in range(depth - 2)] + [1]


class AdaptiveNorm(nn.Module):
    """``a * x + b * BN(x)`` with ``a = 1, b = 0`` at start (the paper's adaptive batch normalisation)."""

    def __init__(self, channels: int):
        super().__init__()
        self.a = nn.Parameter(torch.ones(1))
        self.b = nn.Parameter(torch.zeros(1))
        self.bn = nn.BatchNorm2d(channels, momentum=0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a * x + self.b * self.bn(x)


class ContextAggregationNet(nn.Module):
    """Dilated 3x3 convolutions with exponentially growing receptive field: ``(B, 3, H, W) -> (B, C, H, W)``."""

    min_size = 1
    prefers_channels_last = True  # predict() runs it channels-last on the CPU (measured ~2x, README q4)

    def __init__(self, in_channels: int = 3, out_channels: int = 1, width: int = 24, depth: int = 7,
                 norm: bool = True, residual: bool | None = None):
        super().__init__()
        if depth < 3:
            raise ValueError(f"depth must be at least 3, got {depth}")
        if width < 1:
            raise ValueError(f"width must be positive, got {width}")
        residual = (in_channels == out_channels) if residual is None else residual
        if residual and in_channels != out_channels:
            raise ValueError("residual needs as many output channels as input channels")
        self.config = dict(in_channels=in_channels, out_channels=out_channels, width=width, depth=depth,
                           norm=norm, residual=residual)
        self.out_channels, self.residual = out_channels, residual
        self.dilations = dilations(depth)
        self.receptive_radius = sum(self.dilations)
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        channels = in_channels
        for d in self.dilations:
            self.convs.append(nn.Conv2d(channels, width, 3, dilation=d))
            self.norms.append(AdaptiveNorm(width) if norm else nn.Identity())
            channels = width
        self.head = nn.Conv2d(width, out_channels, 1)
        if residual:  # start as the identity map
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for conv, norm, d in zip(self.convs, self.norms, self.dilations):
            y = F.leaky_relu(norm(conv(pad_reflect101(y, d))), 0.2)
        y = self.head(y)
        return clamp01_straight_through(x + y if self.residual else y)
