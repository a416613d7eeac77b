"""The operator zoo: each filter wraps OpenCV as its ground truth, RGB uint8 in, float32 in [0, 1] out.

Gray operators return ``(H, W)``; colour operators return ``(H, W, 3)`` (RGB) and declare
``out_channels=3``. Every border is OpenCV's default, reflect-101. The cheap linear ones (scharr,
laplacian, emboss, gaussian, box, unsharp) also have a torch twin that matches OpenCV to 1e-5, so their
training targets are computed on the model's device; the others run in the data loader.

>>> from src.filters import get_filter
>>> get_filter("stylization")(np.zeros((5, 7, 3), np.uint8)).shape
(5, 7, 3)
"""
from __future__ import annotations

import math
from typing import Any, Callable

import cv2
import numpy as np
import torch

from src.errors import UserError
from src.filters.functional import correlate, max_gradient_magnitude, rgb_to_gray
from src.filters.linear import gray_linear_cv, gray_linear_torch, rgb_kernel, unit_affine
from src.filters.registry import Filter, register

LAPLACIAN_KERNELS = {1: np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32),
                     3: np.array([[2, 0, 2], [0, -8, 0], [2, 0, 2]], np.float32)}
EMBOSS_KERNEL = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], np.float32)

# The zoo's filters as (name, params), in the order of its tables; the demo and the studies offer this list.
ZOO_FILTERS: list[tuple[str, dict]] = [
    ("random", {"seed": 0, "size": 3}), ("random-nonlinear", {"seed": 0}),
    ("sobel", {}), ("scharr", {}), ("laplacian", {}), ("canny", {}), ("emboss", {}),
    ("gaussian", {}), ("box", {}), ("median", {}), ("bilateral", {}), ("unsharp", {}),
    ("stylization", {}), ("detail-enhance", {}), ("edge-preserving", {}), ("pencil-sketch", {}),
]


def _filter(name: str, params: dict[str, Any], defaults: dict[str, Any], reference: Callable,
            torch_fn: Callable | None = None, out_channels: int = 1, **extra: Any) -> Filter:
    shown = {k: v for k, v in params.items() if defaults.get(k) != v}
    return Filter(name=name, params=shown, reference=reference, torch_fn=torch_fn, out_channels=out_channels,
                  description=name, extra={"params": params, **extra})


def _odd(name: str, value: int, low: int = 1) -> int:
    if not isinstance(value, int) or value < low or value % 2 == 0:
        raise UserError(f"{name} must be an odd integer >= {low}, got {value!r}")
    return value


def _positive(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or not value > 0:
        raise UserError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _float_rgb(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) / np.float32(255.0)


def _bgr_photo(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """Wrap an OpenCV photo function (BGR uint8 in, BGR uint8 out) as RGB uint8 -> RGB float in [0, 1]."""

    def reference(rgb: np.ndarray) -> np.ndarray:
        out = fn(np.ascontiguousarray(rgb[..., ::-1]))
        out = out[..., ::-1] if out.ndim == 3 else out
        return np.ascontiguousarray(out, dtype=np.float32) / np.float32(255.0)

    return reference


def _gaussian_1d(ksize: int, sigma: float) -> np.ndarray:
    return cv2.getGaussianKernel(ksize, sigma).ravel()


def _separable_torch(x: torch.Tensor, k: np.ndarray) -> torch.Tensor:
    return correlate(correlate(x, k[:, None]), k[None, :])


@register("scharr", "Scharr gradient magnitude of the BT.601 gray image, divided by its largest possible value")
def make_scharr() -> Filter:
    deriv, smooth = (k.ravel().astype(np.float64) for k in cv2.getDerivKernels(1, 0, cv2.FILTER_SCHARR))
    kx, ky = np.outer(smooth, deriv), np.outer(deriv, smooth)
    top = max_gradient_magnitude(kx, ky)

    def reference(rgb: np.ndarray) -> np.ndarray:
        gray = cv2.cvtColor(_float_rgb(rgb), cv2.COLOR_RGB2GRAY)
        gx = cv2.Scharr(gray, cv2.CV_32F, 1, 0, borderType=cv2.BORDER_REFLECT_101)
        gy = cv2.Scharr(gray, cv2.CV_32F, 0, 1, borderType=cv2.BORDER_REFLECT_101)
        return np.clip(cv2.magnitude(gx, gy) / np.float32(top), 0.0, 1.0)

    def torch_fn(x: torch.Tensor) -> torch.Tensor:
        gray = rgb_to_gray(x)
        gx, gy = correlate(gray, kx.astype(np.float32)), correlate(gray, ky.astype(np.float32))
        return (torch.sqrt(gx * gx + gy * gy) / top).clamp(0.0, 1.0)

    return _filter("scharr", {}, {}, reference, torch_fn, kernels=(kx, ky))


@register("laplacian", "Laplacian of the BT.601 gray image (ksize 1 or 3), 0.5 + response / sum|k|")
def make_laplacian(ksize: int = 1) -> Filter:
    if ksize not in LAPLACIAN_KERNELS:
        raise UserError(f"laplacian ksize must be 1 or 3, got {ksize!r}")
    kernel = LAPLACIAN_KERNELS[ksize]
    scale, offset = unit_affine(kernel)

    def reference(rgb: np.ndarray) -> np.ndarray:
        gray = cv2.cvtColor(_float_rgb(rgb), cv2.COLOR_RGB2GRAY)
        lap = cv2.Laplacian(gray, cv2.CV_32F, ksize=ksize, borderType=cv2.BORDER_REFLECT_101)
        return np.clip(lap * np.float32(scale) + np.float32(offset), 0.0, 1.0)

    return _filter("laplacian", {"ksize": ksize}, {"ksize": 1}, reference,
                   lambda x: gray_linear_torch(x, kernel), kernel=kernel, rgb_kernel=rgb_kernel(kernel))


@register("canny", "Canny edges (cv2.Canny on the 8-bit gray image), 0 or 1")
def make_canny(low: float = 100.0, high: float = 200.0) -> Filter:
    if not 0 <= low <= high:
        raise UserError(f"canny needs 0 <= low <= high, got low={low!r}, high={high!r}")

    def reference(rgb: np.ndarray) -> np.ndarray:
        edges = cv2.Canny(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), low, high)
        return (edges > 0).astype(np.float32)

    return _filter("canny", {"low": low, "high": high}, {"low": 100.0, "high": 200.0}, reference)


@register("gaussian", "Gaussian blur of each RGB channel (cv2.GaussianBlur, ksize, sigma 0 = from ksize)")
def make_gaussian(ksize: int = 5, sigma: float = 0.0) -> Filter:
    _odd("gaussian ksize", ksize)
    k = _gaussian_1d(ksize, sigma)

    def reference(rgb: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(_float_rgb(rgb), (ksize, ksize), sigma, borderType=cv2.BORDER_REFLECT_101)

    return _filter("gaussian", {"ksize": ksize, "sigma": sigma}, {"ksize": 5, "sigma": 0.0}, reference,
                   lambda x: _separable_torch(x, k), out_channels=3)


@register("box", "Box blur (mean over ksize x ksize) of each RGB channel (cv2.blur)")
def make_box(ksize: int = 5) -> Filter:
    _odd("box ksize", ksize)
    k = np.full(ksize, 1.0 / ksize)

    def reference(rgb: np.ndarray) -> np.ndarray:
        return cv2.blur(_float_rgb(rgb), (ksize, ksize), borderType=cv2.BORDER_REFLECT_101)

    return _filter("box", {"ksize": ksize}, {"ksize": 5}, reference, lambda x: _separable_torch(x, k), out_channels=3)


@register("median", "Median of each RGB channel over ksize x ksize (cv2.medianBlur on 8 bits)")
def make_median(ksize: int = 5) -> Filter:
    _odd("median ksize", ksize, 3)
    return _filter("median", {"ksize": ksize}, {"ksize": 5},
                   lambda rgb: cv2.medianBlur(rgb, ksize).astype(np.float32) / np.float32(255.0), out_channels=3)


@register("bilateral", "Edge-preserving bilateral smoothing of the RGB image (cv2.bilateralFilter)")
def make_bilateral(d: int = 9, sigma_color: float = 75.0, sigma_space: float = 75.0) -> Filter:
    _odd("bilateral d", d)
    _positive("sigma_color", sigma_color), _positive("sigma_space", sigma_space)

    def reference(rgb: np.ndarray) -> np.ndarray:
        out = cv2.bilateralFilter(rgb, d, sigma_color, sigma_space, borderType=cv2.BORDER_REFLECT_101)
        return out.astype(np.float32) / np.float32(255.0)

    params = {"d": d, "sigma_color": sigma_color, "sigma_space": sigma_space}
    return _filter("bilateral", params, {"d": 9, "sigma_color": 75.0, "sigma_space": 75.0}, reference, out_channels=3)


@register("unsharp", "Unsharp mask: rgb + amount * (rgb - gaussian(sigma)), clipped to [0, 1]")
def make_unsharp(sigma: float = 2.0, amount: float = 1.0) -> Filter:
    _positive("unsharp sigma", sigma)
    ksize = 2 * math.ceil(3 * sigma) + 1
    k = _gaussian_1d(ksize, sigma)

    def reference(rgb: np.ndarray) -> np.ndarray:
        img = _float_rgb(rgb)
        blur = cv2.GaussianBlur(img, (ksize, ksize), sigma, borderType=cv2.BORDER_REFLECT_101)
        return np.clip(img + np.float32(amount) * (img - blur), 0.0, 1.0)

    def torch_fn(x: torch.Tensor) -> torch.Tensor:
        return (x + amount * (x - _separable_torch(x, k))).clamp(0.0, 1.0)

    return _filter("unsharp", {"sigma": sigma, "amount": amount}, {"sigma": 2.0, "amount": 1.0},
                   reference, torch_fn, out_channels=3)


@register("emboss", "Emboss kernel [[-2,-1,0],[-1,1,1],[0,1,2]] on the gray image (cv2.filter2D), affine to [0, 1]")
def make_emboss() -> Filter:
    return _filter("emboss", {}, {}, lambda rgb: gray_linear_cv(rgb, EMBOSS_KERNEL),
                   lambda x: gray_linear_torch(x, EMBOSS_KERNEL), kernel=EMBOSS_KERNEL,
                   rgb_kernel=rgb_kernel(EMBOSS_KERNEL))


def _sigma_photo(name: str, cv_fn: Callable, sigma_s: float, sigma_r: float, defaults: tuple[float, float]) -> Filter:
    """An OpenCV photo operator with the usual (sigma_s, sigma_r) parameters, RGB out."""
    _positive("sigma_s", sigma_s), _positive("sigma_r", sigma_r)
    ref = _bgr_photo(lambda bgr: cv_fn(bgr, sigma_s=sigma_s, sigma_r=sigma_r))
    return _filter(name, {"sigma_s": sigma_s, "sigma_r": sigma_r}, dict(zip(("sigma_s", "sigma_r"), defaults)),
                   ref, out_channels=3)


@register("stylization", "OpenCV's watercolour-like stylization (cv2.stylization), RGB out")
def make_stylization(sigma_s: float = 60.0, sigma_r: float = 0.45) -> Filter:
    return _sigma_photo("stylization", cv2.stylization, sigma_s, sigma_r, (60.0, 0.45))


@register("detail-enhance", "OpenCV's detail enhancement (cv2.detailEnhance), RGB out")
def make_detail_enhance(sigma_s: float = 10.0, sigma_r: float = 0.15) -> Filter:
    return _sigma_photo("detail-enhance", cv2.detailEnhance, sigma_s, sigma_r, (10.0, 0.15))


@register("edge-preserving", "OpenCV's edge-preserving smoothing (cv2.edgePreservingFilter, recursive), RGB out")
def make_edge_preserving(sigma_s: float = 60.0, sigma_r: float = 0.4, flags: int = cv2.RECURS_FILTER) -> Filter:
    _positive("sigma_s", sigma_s), _positive("sigma_r", sigma_r)
    if flags not in (cv2.RECURS_FILTER, cv2.NORMCONV_FILTER):
        raise UserError(f"edge-preserving flags must be 1 (recursive) or 2 (normalised convolution), got {flags!r}")
    ref = _bgr_photo(lambda bgr: cv2.edgePreservingFilter(bgr, flags=flags, sigma_s=sigma_s, sigma_r=sigma_r))
    params = {"sigma_s": sigma_s, "sigma_r": sigma_r, "flags": flags}
    return _filter("edge-preserving", params, {"sigma_s": 60.0, "sigma_r": 0.4, "flags": cv2.RECURS_FILTER},
                   ref, out_channels=3)


@register("pencil-sketch", "OpenCV's pencil sketch (cv2.pencilSketch), gray out (color=True: RGB out)")
def make_pencil_sketch(sigma_s: float = 60.0, sigma_r: float = 0.07, shade_factor: float = 0.02,
                       color: bool = False) -> Filter:
    _positive("sigma_s", sigma_s), _positive("sigma_r", sigma_r), _positive("shade_factor", shade_factor)
    pick = 1 if color else 0
    ref = _bgr_photo(lambda bgr: cv2.pencilSketch(bgr, sigma_s=sigma_s, sigma_r=sigma_r, shade_factor=shade_factor)[pick])
    params = {"sigma_s": sigma_s, "sigma_r": sigma_r, "shade_factor": shade_factor, "color": color}
    defaults = {"sigma_s": 60.0, "sigma_r": 0.07, "shade_factor": 0.02, "color": False}
    return _filter("pencil-sketch", params, defaults, ref, out_channels=3 if color else 1)
