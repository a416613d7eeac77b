"""Small tensor functions shared by the filters and the networks (OpenCV's conventions, in torch)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# OpenCV's RGB -> gray weights (ITU-R BT.601), applied in float without rounding to 8 bits.
BT601 = (0.299, 0.587, 0.114)


def reflect101_indices(n: int, pad: int, device: torch.device | None = None) -> torch.Tensor:
    """Indices of a length-``n`` axis padded by ``pad`` on each side with OpenCV's BORDER_REFLECT_101.

    Unlike ``F.pad(mode="reflect")`` this works for any ``n >= 1`` and any ``pad``
    (a single pixel reflects onto itself, as ``cv2.borderInterpolate`` does).
    """
    idx = torch.arange(-pad, n + pad, device=device)
    if n == 1:
        return torch.zeros_like(idx)
    period = 2 * (n - 1)
    idx = idx.abs() % period
    return torch.where(idx >= n, period - idx, idx)


def pad_reflect101(x: torch.Tensor, pad_h: int, pad_w: int | None = None) -> torch.Tensor:
    """Pad ``(..., H, W)`` with reflect-101 (``gfedcb|abcdefgh|gfedcba``), OpenCV's default border."""
    pad_w = pad_h if pad_w is None else pad_w
    h, w = x.shape[-2:]
    if h > pad_h and w > pad_w:
        if pad_h == 0 and pad_w == 0:
            return x
        return F.pad(x, (pad_w, pad_w, pad_h, pad_h), mode="reflect")
    x = x.index_select(-2, reflect101_indices(h, pad_h, x.device))
    return x.index_select(-1, reflect101_indices(w, pad_w, x.device))


def rgb_to_gray(x: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W) -> (B, 1, H, W)`` with OpenCV's BT.601 weights."""
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return BT601[0] * r + BT601[1] * g + BT601[2] * b


def correlate(x: torch.Tensor, kernel: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Correlate every channel of ``(B, C, H, W)`` with a 2-D kernel, reflect-101 borders, same size out.

    This is what ``cv2.filter2D`` / ``cv2.sepFilter2D`` compute with the default border.
    """
    k = torch.as_tensor(kernel, dtype=x.dtype, device=x.device)
    kh, kw = k.shape
    c = x.shape[1]
    xp = pad_reflect101(x, kh // 2, kw // 2)
    weight = k.expand(c, 1, kh, kw)
    return F.conv2d(xp, weight, groups=c)


def max_gradient_magnitude(kx: np.ndarray, ky: np.ndarray) -> float:
    """Largest ``sqrt((kx.x)^2 + (ky.x)^2)`` over inputs ``x`` in [0, 1]^n.

    The magnitude is convex, so its maximum is at a vertex of the cube; for a direction theta the best
    vertex keeps the pixels where ``cos(theta) kx + sin(theta) ky > 0``. Sweeping theta finely visits
    every such half-plane set, and each set's exact magnitude is evaluated.
    """
    kx, ky = np.asarray(kx, np.float64).ravel(), np.asarray(ky, np.float64).ravel()
    theta = np.linspace(0, 2 * np.pi, 20000, endpoint=False)
    proj = np.cos(theta)[:, None] * kx + np.sin(theta)[:, None] * ky
    keep = proj > 0
    gx, gy = keep @ kx, keep @ ky
    return float(np.sqrt(gx**2 + gy**2).max())
