"""Per-image metrics at native resolution, data range 1, borders included."""
from __future__ import annotations

import math

import numpy as np
import torch

from src.errors import UserError

PSNR_CAP = 100.0  # dB reported for an exact match (MSE below 1e-10)


def psnr(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB for images in [0, 1] (over ``mask`` pixels if given); ``nan`` for an empty mask.

    >>> round(psnr(np.zeros((4, 4)), np.full((4, 4), 0.1)), 2)
    20.0
    """
    d = np.asarray(pred, np.float64) - np.asarray(target, np.float64)
    if mask is not None:
        d = d[mask]
    if d.size == 0:
        return float("nan")
    mse = float(np.mean(d * d))
    return PSNR_CAP if mse < 1e-10 else min(PSNR_CAP, 10.0 * math.log10(1.0 / mse))


SSIM_STRIP_PIXELS = 2_000_000  # torchmetrics' SSIM peaks at ~500 bytes per pixel: bound it by strips


def ssim(pred: np.ndarray, target: np.ndarray) -> float:
    """SSIM (torchmetrics: gaussian window 11, sigma 1.5, reflect padding, data range 1); nan below 11 px.

    Computed over row strips with 5 rows of context each side (the window's radius), so each strip's
    SSIM map equals the whole image's there: the same value as one call, in bounded memory.
    """
    from torchmetrics.functional.image import structural_similarity_index_measure

    if min(pred.shape[:2]) < 11:
        return float("nan")
    H, W = pred.shape[:2]
    rows, halo, total = max(64, SSIM_STRIP_PIXELS // W), 5, 0.0
    for r0 in range(0, H, rows):
        r1 = min(H, r0 + rows)
        ya, yb = max(0, r0 - halo), min(H, r1 + halo)
        p, t = (_chw(a[ya:yb]) for a in (pred, target))
        _, ssim_map = structural_similarity_index_measure(p, t, data_range=1.0, return_full_image=True)
        total += float(ssim_map[..., r0 - ya : r1 - ya, :].double().sum())
    channels = 1 if pred.ndim == 2 else pred.shape[2]
    return total / (H * W * channels)


def _chw(a: np.ndarray) -> torch.Tensor:
    a = np.asarray(a, np.float32)
    a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(a))[None]


def border_mask(shape: tuple[int, ...], ring: int = 4) -> np.ndarray:
    """True on the ``ring``-pixel frame of an ``(H, W, ...)`` image."""
    m = np.zeros(shape[:2], bool)
    m[:ring], m[-ring:], m[:, :ring], m[:, -ring:] = True, True, True, True
    return m if len(shape) == 2 else np.broadcast_to(m[:, :, None], shape)


def image_metrics(pred: np.ndarray, target: np.ndarray, ring: int = 4) -> dict[str, float]:
    """PSNR, SSIM, MAE, PSNR of an all-zero prediction, and PSNR on the border ring vs the interior."""
    if pred.shape != target.shape:
        raise UserError(f"prediction shape {pred.shape} differs from target shape {target.shape}")
    ring_mask = border_mask(target.shape, ring)
    return {
        "psnr": psnr(pred, target),
        "ssim": ssim(pred, target),
        "mae": float(np.mean(np.abs(np.asarray(pred, np.float64) - target))),
        "zero_psnr": psnr(np.zeros_like(target), target),
        "border_psnr": psnr(pred, target, ring_mask),
        "interior_psnr": psnr(pred, target, ~ring_mask),
    }
