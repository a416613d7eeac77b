"""Expensive operators: edge-preserving smoothing, denoising and painting, RGB uint8 in, RGB float32 in [0, 1] out.

Each wraps one library call (OpenCV's contrib modules ``cv2.ximgproc``/``cv2.xphoto``, or scikit-image) with its
defaults as parameters, takes any size >= 1 x 1, and declares ``out_channels=3``. They have no torch twin, so
their targets are computed in the data loader. The OpenCV ones need opencv-contrib-python-headless (the same
``cv2`` module as the plain headless build, plus the contrib modules); without it, building one is a one-line
``UserError``. Every one leaves a constant image unchanged, a 1 x 1 image included.

>>> from src.filters import get_filter
>>> get_filter("tv-denoise")(np.zeros((1, 7, 3), np.uint8)).shape
(1, 7, 3)
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from src.errors import UserError
from src.filters.registry import Filter, register
from src.filters.zoo import _bgr_photo, _filter, _positive

# The operators as (name, params), {} being the defaults of the table, in its order (for the studies).
OPERATORS: list[tuple[str, dict]] = [
    ("l0-smooth", {}), ("tv-denoise", {}), ("nl-means", {}), ("rolling-guidance", {}), ("oil-painting", {}),
    ("guided", {}), ("anisotropic-diffusion", {}),
]


def _contrib(name: str, module: str = "ximgproc") -> Any:
    """``cv2.ximgproc`` (or ``cv2.xphoto``), or a one-line ``UserError`` naming the package that has it."""
    found = getattr(cv2, module, None)
    if found is None:
        raise UserError(f"{name} needs OpenCV's contrib module cv2.{module}: install opencv-contrib-python-headless "
                        f"in place of opencv-python-headless")
    return found


def _integer(name: str, value: int, low: int, high: int | None = None) -> int:
    whole = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not whole or value < low or (high is not None and value > high):
        span = f">= {low}" if high is None else f"from {low} to {high}"
        raise UserError(f"{name} must be an integer {span}, got {value!r}")
    return int(value)


def _unit_float32(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.clip(x.reshape(shape), 0.0, 1.0).astype(np.float32)


@register("l0-smooth", "L0 gradient minimisation: flat regions with sharp edges (cv2.ximgproc.l0Smooth)")
def make_l0_smooth(lam: float = 0.02, kappa: float = 2.0) -> Filter:
    """L0 smoothing (Xu et al. 2011) with weight ``lam`` on the count of non-zero gradients.

    Tiny images: the library refuses a single row or column, so a 1 x N (N x 1) image is padded to 2 rows
    (columns) with reflect-101, which repeats it: its gradients across are zero and the result is the 1-D L0
    smoothing; 1 x 1 comes back unchanged. 2 x 2 and larger are the library's result, which on tiny noisy images
    (and on noise generally) can saturate to 0 or 1.
    """
    lam = _positive("l0-smooth lam", lam)
    if isinstance(kappa, bool) or not isinstance(kappa, (int, float)) or not kappa > 1:
        raise UserError(f"l0-smooth kappa must be a number > 1, got {kappa!r}")
    kappa, xi = float(kappa), _contrib("l0-smooth")

    def smooth(bgr: np.ndarray) -> np.ndarray:
        h, w = bgr.shape[:2]
        padded = cv2.copyMakeBorder(bgr, 0, int(h < 2), 0, int(w < 2), cv2.BORDER_REFLECT_101)
        return xi.l0Smooth(padded, None, lam, kappa)[:h, :w]

    return _filter("l0-smooth", {"lam": lam, "kappa": kappa}, {"lam": 0.02, "kappa": 2.0}, _bgr_photo(smooth),
                   out_channels=3)


@register("tv-denoise", "Total-variation denoising, Chambolle's algorithm (skimage denoise_tv_chambolle)")
def make_tv_denoise(weight: float = 0.1) -> Filter:
    """TV denoising of ``rgb / 255`` (float64) with ``weight``, channels coupled, clipped to [0, 1].

    Tiny images: any size works as is; 1 x 1 comes back unchanged, 1 x N is 1-D TV denoising.
    """
    from skimage.restoration import denoise_tv_chambolle  # start-up: scipy only when the filter is built

    weight = _positive("tv-denoise weight", weight)

    def reference(rgb: np.ndarray) -> np.ndarray:
        return _unit_float32(denoise_tv_chambolle(rgb / 255.0, weight=weight, channel_axis=-1), rgb.shape)

    return _filter("tv-denoise", {"weight": weight}, {"weight": 0.1}, reference, out_channels=3)


@register("nl-means", "Non-local means denoising, fast mode (skimage denoise_nl_means)")
def make_nl_means(h: float = 0.05) -> Filter:
    """Non-local means of ``rgb / 255`` (float64, 7 x 7 patches searched over 23 x 23) with cut-off ``h``.

    Tiny images: any size works; scikit-image squeezes a 1-pixel axis (1 x N is 1-D non-local means, 1 x 1 comes
    back unchanged) and the result is reshaped back to (H, W, 3).
    """
    from skimage.restoration import denoise_nl_means  # start-up: scipy only when the filter is built

    h = _positive("nl-means h", h)

    def reference(rgb: np.ndarray) -> np.ndarray:
        return _unit_float32(denoise_nl_means(rgb / 255.0, h=h, fast_mode=True, channel_axis=-1), rgb.shape)

    return _filter("nl-means", {"h": h}, {"h": 0.05}, reference, out_channels=3)


@register("rolling-guidance", "Rolling guidance filter: removes small structures, keeps large edges "
                              "(cv2.ximgproc.rollingGuidanceFilter)")
def make_rolling_guidance(d: int = -1, sigma_color: float = 25.0, sigma_space: float = 3.0,
                          iters: int = 4) -> Filter:
    """Rolling guidance (Zhang et al. 2014): ``iters`` joint bilateral passes (``d`` -1: diameter from sigma_space).

    Tiny images: any size works as is (the bilateral window is clipped at reflect-101 borders); 1 x 1 comes back
    unchanged.
    """
    if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or not (d == -1 or d >= 1):
        raise UserError(f"rolling-guidance d must be -1 (from sigma_space) or a positive integer, got {d!r}")
    sigma_color = _positive("rolling-guidance sigma_color", sigma_color)
    sigma_space = _positive("rolling-guidance sigma_space", sigma_space)
    iters, xi = _integer("rolling-guidance iters", iters, 1), _contrib("rolling-guidance")
    ref = _bgr_photo(lambda bgr: xi.rollingGuidanceFilter(bgr, None, int(d), sigma_color, sigma_space, iters))
    params = {"d": int(d), "sigma_color": sigma_color, "sigma_space": sigma_space, "iters": iters}
    defaults = {"d": -1, "sigma_color": 25.0, "sigma_space": 3.0, "iters": 4}
    return _filter("rolling-guidance", params, defaults, ref, out_channels=3)


@register("oil-painting", "Oil painting: each pixel takes the mean colour of its neighbourhood's most common "
                          "intensity (cv2.xphoto.oilPainting)")
def make_oil_painting(size: int = 7, dyn_ratio: int = 1) -> Filter:
    """Oil painting over a ``(2 size + 1)``-wide window, intensities divided by ``dyn_ratio`` before the histogram.

    The intensity is the BT.601 gray of the BGR image, so colour order matters. Tiny images: any size works as is
    (the window is clipped to the image); 1 x 1 comes back unchanged.
    """
    size, dyn_ratio = _integer("oil-painting size", size, 1), _integer("oil-painting dyn_ratio", dyn_ratio, 1, 127)
    xphoto = _contrib("oil-painting", "xphoto")
    return _filter("oil-painting", {"size": size, "dyn_ratio": dyn_ratio}, {"size": 7, "dyn_ratio": 1},
                   _bgr_photo(lambda bgr: xphoto.oilPainting(bgr, size, dyn_ratio)), out_channels=3)


@register("guided", "Self-guided filter: edge-preserving smoothing (cv2.ximgproc.guidedFilter, guide = image)")
def make_guided(radius: int = 8, eps: float = 100.0) -> Filter:
    """Guided filter (He et al. 2010) with the image as its own guide; ``eps`` is a variance, in 8-bit units squared.

    Tiny images: any size works as is (box means over reflected borders); 1 x 1 comes back unchanged.
    """
    radius, eps = _integer("guided radius", radius, 1), _positive("guided eps", eps)
    xi = _contrib("guided")
    return _filter("guided", {"radius": radius, "eps": eps}, {"radius": 8, "eps": 100.0},
                   _bgr_photo(lambda bgr: xi.guidedFilter(bgr, bgr, radius, eps)), out_channels=3)


@register("anisotropic-diffusion", "Perona-Malik anisotropic diffusion (cv2.ximgproc.anisotropicDiffusion)")
def make_anisotropic_diffusion(alpha: float = 0.1, k: float = 20.0, iters: int = 10) -> Filter:
    """``iters`` steps of Perona-Malik diffusion (step ``alpha``, edge sensitivity ``k``) over the 8 neighbours.

    Runs the library one step at a time: its multi-step call reads uninitialised memory at the border from the
    second step on (results near the border change from call to call, and a constant image smaller than about
    8 x 8 does not stay constant). One step at a time replicates the border every step, as its first step does,
    and equals the multi-step call from ``iters`` pixels inside the border. Tiny images: any size works as is;
    1 x 1 comes back unchanged.
    """
    alpha, k = _positive("anisotropic-diffusion alpha", alpha), _positive("anisotropic-diffusion k", k)
    iters, xi = _integer("anisotropic-diffusion iters", iters, 1), _contrib("anisotropic-diffusion")

    def diffuse(bgr: np.ndarray) -> np.ndarray:
        for _ in range(iters):
            bgr = xi.anisotropicDiffusion(bgr, alpha, k, 1)
        return bgr

    return _filter("anisotropic-diffusion", {"alpha": alpha, "k": k, "iters": iters},
                   {"alpha": 0.1, "k": 20.0, "iters": 10}, _bgr_photo(diffuse), out_channels=3)
