"""Per-image metrics at native resolution, data range 1, borders included."""
from __future__ import annotations

import math

import cv2
import numpy as np

from src.errors import UserError
from src.io.images import to_uint8

PSNR_CAP = 100.0  # dB reported for an exact match (MSE below 1e-10)
CHUNK = 1 << 22  # values per step of the PSNR sum (bounded memory at any size)


def psnr(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """PSNR in dB for images in [0, 1] (over ``mask`` pixels if given).

    ``nan`` for an empty mask and for a prediction or target holding NaN or infinite values: such a
    prediction is a failure, never a score (callers report it as such). An exact match reports
    ``PSNR_CAP``. Computed in chunks of ``CHUNK`` values, so a 50 MP image needs no float64 copy.

    >>> round(psnr(np.zeros((4, 4)), np.full((4, 4), 0.1)), 2)
    20.0
    >>> psnr(np.full((4, 4), np.nan), np.zeros((4, 4)))
    nan
    """
    pred, target = np.asarray(pred), np.asarray(target)
    if mask is not None:
        pred, target = pred[mask], target[mask]
    if pred.size == 0:
        return float("nan")
    p, t = pred.reshape(-1), target.reshape(-1)
    sse = 0.0
    for i in range(0, p.size, CHUNK):
        d = p[i : i + CHUNK].astype(np.float64) - t[i : i + CHUNK]
        sse += float(np.dot(d, d))
    if not math.isfinite(sse):
        return float("nan")
    mse = sse / p.size
    return PSNR_CAP if mse < 1e-10 else min(PSNR_CAP, 10.0 * math.log10(1.0 / mse))


SSIM_STRIP_PIXELS = 2_000_000  # torchmetrics' SSIM peaks at ~500 bytes per pixel: bound it by strips


def ssim(pred: np.ndarray, target: np.ndarray, max_pixels: int | None = None) -> float:
    """SSIM as torchmetrics computes it (gaussian window 11, sigma 1.5, reflect-101 padding, data range 1,
    borders included), with OpenCV's separable filters (~10x faster; equal to torchmetrics in float64, tested); nan below
    11 px and for non-finite values.

    Computed over row strips with 5 rows of context each side (the window's radius), so each strip's
    SSIM map equals the whole image's there: the same value as one call, in bounded memory. With
    ``max_pixels`` and a larger image, only evenly spaced strips totalling about ``max_pixels`` are
    averaged (an estimate at bounded cost; see :func:`ssim_is_sampled`).
    """
    if min(pred.shape[:2]) < 11 or not (np.isfinite(pred).all() and np.isfinite(target).all()):
        return float("nan")
    H, W = pred.shape[:2]
    rows, halo, total, count = max(64, SSIM_STRIP_PIXELS // W), 5, 0.0, 0
    starts = list(range(0, H, rows))
    if ssim_is_sampled(pred.shape, max_pixels):
        rows = max(16, max_pixels // (16 * W))
        all_starts = list(range(0, H, rows))
        keep = max(1, max_pixels // (rows * W))
        starts = [all_starts[int(i * len(all_starts) / keep)] for i in range(min(keep, len(all_starts)))]
    for r0 in starts:
        r1 = min(H, r0 + rows)
        ya, yb = max(0, r0 - halo), min(H, r1 + halo)
        ssim_map = _ssim_map(np.asarray(pred[ya:yb], np.float64), np.asarray(target[ya:yb], np.float64))
        total += float(ssim_map[r0 - ya : r1 - ya].sum(dtype=np.float64))
        count += (r1 - r0) * W
    channels = 1 if pred.ndim == 2 else pred.shape[2]
    return total / (count * channels)


def _ssim_map(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM of float64 ``(h, w)`` or ``(h, w, C)`` arrays (torchmetrics' formula and window).

    float64: ``E[x^2] - E[x]^2`` cancels, and float32 leaves errors of ~1e-6 in the mean."""
    k = cv2.getGaussianKernel(11, 1.5, cv2.CV_64F)

    def blur(a: np.ndarray) -> np.ndarray:
        return cv2.sepFilter2D(a, cv2.CV_64F, k, k, borderType=cv2.BORDER_REFLECT_101)

    c1, c2 = 0.01**2, 0.03**2
    mx, my = blur(x), blur(y)
    mxx, myy, mxy = mx * mx, my * my, mx * my
    sxx, syy, sxy = blur(x * x) - mxx, blur(y * y) - myy, blur(x * y) - mxy
    return ((2 * mxy + c1) * (2 * sxy + c2)) / ((mxx + myy + c1) * (sxx + syy + c2))


def ssim_is_sampled(shape: tuple[int, ...], max_pixels: int | None) -> bool:
    """Whether :func:`ssim` with ``max_pixels`` averages a sample of rows rather than the whole image."""
    return max_pixels is not None and shape[0] * shape[1] > max_pixels


def border_mask(shape: tuple[int, ...], ring: int = 4) -> np.ndarray:
    """True on the ``ring``-pixel frame of an ``(H, W, ...)`` image."""
    m = np.zeros(shape[:2], bool)
    m[:ring], m[-ring:], m[:, :ring], m[:, -ring:] = True, True, True, True
    return m if len(shape) == 2 else np.broadcast_to(m[:, :, None], shape)


def eight_bit_errors(pred: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """What a picture saved in 8 bits shows: the largest |error| in units of 1/255, and the share of values whose
    8-bit rendering (:func:`~src.io.images.to_uint8`, as ``write_png``) differs from the target's. Above about
    59 dB of PSNR the second is 0 and differences in PSNR are invisible. ``(nan, nan)`` for a non-finite prediction."""
    p, t = np.asarray(pred, np.float32), np.asarray(target, np.float32)
    worst = float(np.max(np.abs(p - t))) * 255.0 if p.size else 0.0
    if not math.isfinite(worst):
        return math.nan, math.nan
    return worst, float(np.mean(to_uint8(p) != to_uint8(t))) if p.size else 0.0


def image_metrics(pred: np.ndarray, target: np.ndarray, ring: int = 4) -> dict[str, float]:
    """PSNR, SSIM, MAE, PSNR of an all-zero prediction, PSNR on the border ring vs the interior, and the 8-bit
    errors (:func:`eight_bit_errors`: ``max_err_255``, ``changed_8bit``)."""
    if pred.shape != target.shape:
        raise UserError(f"prediction shape {pred.shape} differs from target shape {target.shape}")
    ring_mask = border_mask(target.shape, ring)
    worst, changed = eight_bit_errors(pred, target)
    return {
        "psnr": psnr(pred, target),
        "ssim": ssim(pred, target),
        "mae": float(np.mean(np.abs(np.asarray(pred, np.float32) - np.asarray(target, np.float32)), dtype=np.float64)),
        "zero_psnr": psnr(np.zeros_like(target), target),
        "border_psnr": psnr(pred, target, ring_mask),
        "interior_psnr": psnr(pred, target, ~ring_mask),
        "max_err_255": worst,
        "changed_8bit": changed,
    }


def error_by_distance(pred_target: list[tuple[np.ndarray, np.ndarray]], max_d: int = 16) -> np.ndarray:
    """Mean |error| by distance to the nearest image edge, ``(max_d + 1,)``; the last bin is ``>= max_d``.

    >>> e = error_by_distance([(np.ones((5, 5)), np.zeros((5, 5)))], max_d=2)
    >>> e.tolist()
    [1.0, 1.0, 1.0]
    """
    sums, counts = np.zeros(max_d + 1), np.zeros(max_d + 1)
    for pred, target in pred_target:
        err = np.abs(pred.astype(np.float64) - target)
        err = err.mean(axis=2) if err.ndim == 3 else err
        h, w = err.shape
        yy, xx = np.mgrid[:h, :w]
        d = np.minimum(np.minimum(yy, h - 1 - yy), np.minimum(xx, w - 1 - xx)).clip(max=max_d)
        sums += np.bincount(d.ravel(), err.ravel(), max_d + 1)
        counts += np.bincount(d.ravel(), minlength=max_d + 1)
    return sums / np.maximum(counts, 1)


def edge_sharpness(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean gradient magnitude of ``pred`` over that of ``target``: 1 is as sharp as the target, below 1
    blurred, above 1 sharper or noisier. Forward differences, per channel (central ones would miss a
    one-pixel checkerboard, a typical artefact of transposed convolutions); ``nan`` when the target is flat.

    >>> t = np.zeros((8, 8)); t[:, 4:] = 1.0
    >>> edge_sharpness(t, t), round(edge_sharpness(0.5 * t, t), 2)
    (1.0, 0.5)
    """
    def mean_gradient(img: np.ndarray) -> float:
        img = np.asarray(img, np.float64)
        gx, gy = np.diff(img, axis=1)[:-1], np.diff(img, axis=0)[:, :-1]
        return float(np.mean(np.hypot(gx, gy)))

    if np.shape(pred) != np.shape(target):
        raise UserError(f"prediction shape {np.shape(pred)} differs from target shape {np.shape(target)}")
    reference = mean_gradient(target)
    return mean_gradient(pred) / reference if reference > 0 else float("nan")


def gradient_psnr(pred: np.ndarray, target: np.ndarray) -> float:
    """PSNR (data range 1) of the prediction's gradients against the target's: forward differences along x and y,
    per channel, the same as :func:`edge_sharpness`. Unlike a ratio of mean gradients, noise and misplaced edges
    lower it: it scores edges *where the target has them*.

    >>> t = np.zeros((8, 8)); t[:, 4:] = 1.0
    >>> gradient_psnr(t, t), round(gradient_psnr(0.5 * t, t), 2)
    (100.0, 17.48)
    """
    if np.shape(pred) != np.shape(target):
        raise UserError(f"prediction shape {np.shape(pred)} differs from target shape {np.shape(target)}")

    def gradients(img: np.ndarray) -> np.ndarray:
        img = np.asarray(img, np.float32)
        return np.concatenate([np.diff(img, axis=1)[:-1].ravel(), np.diff(img, axis=0)[:, :-1].ravel()])

    return psnr(gradients(pred), gradients(target))
