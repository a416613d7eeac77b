"""Linear filters on the gray image, mapped to [0, 1] by one documented affine scaling.

A kernel ``k`` applied to gray values in [0, 1] gives responses in ``[neg, pos]`` with
``neg = sum(min(k, 0))`` and ``pos = sum(max(k, 0))``: both bounds are reached by some image. The output
is ``(response - neg) / (pos - neg)``, so the full range maps onto [0, 1] exactly and nothing is clipped.
A zero-sum kernel (Laplacian) thus puts "no response" at 0.5.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from src.errors import UserError
from src.filters.functional import BT601, correlate, rgb_to_gray


def unit_affine(kernel: np.ndarray) -> tuple[float, float]:
    """``(scale, offset)`` with ``scale * response + offset`` in [0, 1] for every gray image in [0, 1].

    >>> unit_affine(np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]]))
    (0.125, 0.5)
    """
    k = np.asarray(kernel, np.float64)
    neg, pos = float(np.minimum(k, 0).sum()), float(np.maximum(k, 0).sum())
    if pos - neg <= 0:
        raise UserError("a linear filter needs a kernel with at least one non-zero weight")
    return 1.0 / (pos - neg), -neg / (pos - neg)


def gray_linear_cv(rgb: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """OpenCV reference: RGB uint8 ``(H, W, 3)`` -> BT.601 gray -> ``cv2.filter2D`` (reflect-101) -> affine.

    Returns float32 ``(H, W)`` in [0, 1].

    >>> gray_linear_cv(np.zeros((3, 5, 3), np.uint8), np.ones((3, 3))).shape
    (3, 5)
    """
    scale, offset = unit_affine(kernel)
    gray = cv2.cvtColor(rgb.astype(np.float32) / np.float32(255.0), cv2.COLOR_RGB2GRAY)
    resp = cv2.filter2D(gray, cv2.CV_32F, np.asarray(kernel, np.float32), borderType=cv2.BORDER_REFLECT_101)
    # Rounding can step a hair outside [0, 1] at the exact extremes; the clip only removes that.
    return np.clip(resp * np.float32(scale) + np.float32(offset), 0.0, 1.0).astype(np.float32, copy=False)


def gray_linear_torch(x: torch.Tensor, kernel: np.ndarray) -> torch.Tensor:
    """Torch twin of :func:`gray_linear_cv`: ``(B, 3, H, W)`` in [0, 1] -> ``(B, 1, H, W)`` in [0, 1].

    >>> gray_linear_torch(torch.rand(2, 3, 4, 6), np.ones((3, 3))).shape
    torch.Size([2, 1, 4, 6])
    """
    scale, offset = unit_affine(kernel)
    return (correlate(rgb_to_gray(x), np.asarray(kernel, np.float32)) * scale + offset).clamp(0.0, 1.0)


def rgb_kernel(kernel: np.ndarray) -> np.ndarray:
    """The filter's kernel on the RGB input, ``(3, k, k)``: BT.601 weight x kernel x affine scale.

    This is what a network that learned the filter exactly has as its effective (linearised) kernel.
    """
    scale, _ = unit_affine(kernel)
    return np.stack([w * scale * np.asarray(kernel, np.float64) for w in BT601])
