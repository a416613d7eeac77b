"""Small building blocks shared by the networks."""
from __future__ import annotations

import torch
import torch.nn as nn

from src.filters.functional import reflect101_indices


def clamp01_straight_through(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] in value, identity in gradient, so an overshoot is still pulled back."""
    if not torch.is_grad_enabled():
        return x.clamp(0.0, 1.0)
    return x + (x.clamp(0.0, 1.0) - x).detach()


def run_any_size(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Network on ``(B, 3, h, w)`` of any size: reflect-pads up to the network's ``min_size`` and to a
    multiple of its ``size_multiple`` (the U-Net's ``2**depth``), then crops the output back to ``h x w``; at least
    ``context_margin`` reflected pixels on every side, so the edge pixels are computed as inside ones (reflect-101)."""
    h, w = x.shape[-2:]
    m, k = int(getattr(net, "min_size", 1)), int(getattr(net, "size_multiple", 1))
    e = 2 * int(getattr(net, "context_margin", 0))
    ph, pw = max(m, -(-(h + e) // k) * k) - h, max(m, -(-(w + e) // k) * k) - w
    if not (ph or pw):
        return net(x)
    top, left = (ph + 1) // 2, (pw + 1) // 2
    rows = reflect101_indices(h, max(top, ph - top), x.device)[max(top, ph - top) - top :][: h + ph]
    cols = reflect101_indices(w, max(left, pw - left), x.device)[max(left, pw - left) - left :][: w + pw]
    x = x.index_select(-2, rows).index_select(-1, cols)
    return net(x)[..., top : top + h, left : left + w]
