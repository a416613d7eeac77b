"""Crops and tensors: where training sample i is cut (a pure function of the seed and i), how it is cut and
flipped, how a small image is padded up to the crop, and the float tensors the networks see.

May import: :mod:`src.filters` (the target of a crop).
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from src.filters import Filter


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """RGB uint8 ``(H, W, 3)`` -> float32 ``(3, H, W)`` in [0, 1] (the same scaling as the filters)."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(255.0)


def crop_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of training sample ``index`` under ``seed``: a pure function of the two numbers.

    Crops drawn this way do not depend on the process, the worker, the global RNG or what ran before,
    so a resumed run sees exactly the crops an uninterrupted run would have seen. Negative indices are
    the fixed batch of a second-order finish (:meth:`FilterDataModule.fixed_batch`).
    """
    return np.random.default_rng([seed, index + (1 << 40)])


def random_window(rng: np.random.Generator, weights: np.ndarray, shapes: list[tuple[int, int]], crop: int):
    """One crop position: an image drawn by area, a top-left corner, and two flip flags."""
    i = int(rng.choice(len(shapes), p=weights))
    h, w = shapes[i]
    y0, x0 = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
    flip_x, flip_y = rng.random(2) < 0.5
    return i, y0, x0, bool(flip_x), bool(flip_y)


def cut(img: np.ndarray, y0: int, x0: int, crop: int, flip_x: bool, flip_y: bool) -> np.ndarray:
    """The ``crop`` x ``crop`` patch at ``(y0, x0)``, flipped as asked (the one crop-and-flip routine)."""
    patch = img[y0 : y0 + crop, x0 : x0 + crop]
    if flip_x:
        patch = patch[:, ::-1]
    if flip_y:
        patch = patch[::-1]
    return np.ascontiguousarray(patch)


def target_tensor(filter: Filter, rgb: np.ndarray) -> torch.Tensor:
    """The filter's output for ``rgb`` as float32 ``(C, H, W)``."""
    t = filter(rgb)
    t = t[None] if t.ndim == 2 else t.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(t, dtype=np.float32))


def pad_to(rgb: np.ndarray, size: int) -> np.ndarray:
    """``rgb`` reflect-101 padded (edge-padded when 1 px wide) on the bottom/right up to ``size`` x ``size``."""
    h, w = rgb.shape[:2]
    if h >= size and w >= size:
        return rgb
    ph, pw = max(0, size - h), max(0, size - w)
    if min(h, w) == 1:
        return np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode="edge")
    return cv2.copyMakeBorder(rgb, 0, ph, 0, pw, cv2.BORDER_REFLECT_101)
