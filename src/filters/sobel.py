"""The Sobel gradient magnitude: the filter this project learns first.

Pipeline (the default): RGB uint8 -> float32 in [0, 1] -> gray with BT.601 weights (no rounding) ->
3x3 Gaussian blur with sigma 0 (kernel [1, 2, 1]/4 per axis) -> 3x3 Sobel in x and y ->
sqrt(gx^2 + gy^2) -> clipped to [0, 1]. Every step uses OpenCV's default border, reflect-101.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from src.errors import UserError
from src.filters.functional import correlate, max_gradient_magnitude, rgb_to_gray
from src.filters.registry import Filter, register

NORMALIZATIONS = ("clip", "max")


def sobel_kernels(ksize: int = 3, blur: bool = True, blur_ksize: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The effective 2-D correlation kernels (gx, gy) of blur followed by Sobel, float64.

    >>> kx, ky = sobel_kernels()
    >>> kx.shape
    (5, 5)
    """
    deriv, smooth = (k.ravel().astype(np.float64) for k in cv2.getDerivKernels(1, 0, ksize))
    kx = np.outer(smooth, deriv)  # rows smooth, columns differentiate
    ky = np.outer(deriv, smooth)
    if blur:
        g = cv2.getGaussianKernel(blur_ksize, 0).ravel().astype(np.float64)
        gb = np.outer(g, g)
        kx, ky = _full_convolve(gb, kx), _full_convolve(gb, ky)
    return kx, ky


def _full_convolve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # Correlating with a then b equals correlating with the full convolution of a and b.
    out = np.zeros((a.shape[0] + b.shape[0] - 1, a.shape[1] + b.shape[1] - 1))
    for i in range(b.shape[0]):
        for j in range(b.shape[1]):
            out[i : i + a.shape[0], j : j + a.shape[1]] += b[i, j] * a
    return out


def _check_params(ksize: int, blur_ksize: int, normalize: str) -> None:
    if ksize not in (1, 3, 5, 7):
        raise UserError(f"sobel ksize must be 1, 3, 5 or 7, got {ksize}")
    if blur_ksize < 1 or blur_ksize % 2 == 0:
        raise UserError(f"blur_ksize must be a positive odd number, got {blur_ksize}")
    if normalize not in NORMALIZATIONS:
        raise UserError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")


GRAY_CHUNK_PIXELS = 1 << 20


def sobel_magnitude_cv(
    rgb: np.ndarray, blur: bool = True, ksize: int = 3, blur_ksize: int = 3, normalize: str = "clip"
) -> np.ndarray:
    """Reference Sobel magnitude with OpenCV: RGB uint8 ``(H, W, 3)`` -> float32 ``(H, W)`` in [0, 1].

    >>> sobel_magnitude_cv(np.zeros((4, 6, 3), np.uint8)).shape
    (4, 6)
    """
    _check_params(ksize, blur_ksize, normalize)
    gray = np.empty(rgb.shape[:2], np.float32)
    rows = max(1, GRAY_CHUNK_PIXELS // rgb.shape[1])  # float RGB in row chunks: bounded memory at 50 MP
    for r0 in range(0, rgb.shape[0], rows):
        chunk = rgb[r0 : r0 + rows].astype(np.float32) / np.float32(255.0)
        gray[r0 : r0 + rows] = cv2.cvtColor(chunk, cv2.COLOR_RGB2GRAY)
    if blur:
        gray = cv2.GaussianBlur(gray, (blur_ksize, blur_ksize), 0, borderType=cv2.BORDER_DEFAULT)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=ksize, borderType=cv2.BORDER_DEFAULT)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=ksize, borderType=cv2.BORDER_DEFAULT)
    del gray
    mag = cv2.magnitude(gx, gy, gx)
    if normalize == "max":
        mag /= np.float32(max_gradient_magnitude(*sobel_kernels(ksize, blur, blur_ksize)))
    return np.clip(mag, 0.0, 1.0, out=mag)


def sobel_magnitude(
    x: torch.Tensor, blur: bool = True, ksize: int = 3, blur_ksize: int = 3, normalize: str = "clip"
) -> torch.Tensor:
    """Batched Sobel magnitude in torch, step for step the OpenCV pipeline.

    ``(B, 3, H, W)`` float in [0, 1] -> ``(B, 1, H, W)`` in [0, 1], on the input's device.

    >>> sobel_magnitude(torch.rand(2, 3, 9, 7)).shape
    torch.Size([2, 1, 9, 7])
    """
    _check_params(ksize, blur_ksize, normalize)
    gray = rgb_to_gray(x)
    if blur:
        g = cv2.getGaussianKernel(blur_ksize, 0).ravel()
        gray = correlate(correlate(gray, g[:, None]), g[None, :])
    deriv, smooth = (k.ravel() for k in cv2.getDerivKernels(1, 0, ksize))
    gx = correlate(correlate(gray, smooth[:, None]), deriv[None, :])
    gy = correlate(correlate(gray, deriv[:, None]), smooth[None, :])
    mag = torch.sqrt(gx * gx + gy * gy)
    if normalize == "max":
        mag = mag / max_gradient_magnitude(*sobel_kernels(ksize, blur, blur_ksize))
    return mag.clamp(0.0, 1.0)


@register("sobel", "Sobel gradient magnitude of the blurred BT.601 gray image (the default target)")
def make_sobel(blur: bool = True, ksize: int = 3, blur_ksize: int = 3, normalize: str = "clip") -> Filter:
    _check_params(ksize, blur_ksize, normalize)
    params = dict(blur=blur, ksize=ksize, blur_ksize=blur_ksize, normalize=normalize)
    defaults = dict(blur=True, ksize=3, blur_ksize=3, normalize="clip")
    shown = {k: v for k, v in params.items() if defaults[k] != v}
    return Filter(
        name="sobel",
        params=shown,
        reference=lambda rgb: sobel_magnitude_cv(rgb, **params),
        torch_fn=lambda x: sobel_magnitude(x, **params),
        out_channels=1,
        description="Sobel gradient magnitude",
        extra={"kernels": sobel_kernels(ksize, blur, blur_ksize), "params": params},
    )
