"""What the Gradio demo shows, without Gradio: checkpoints by label, one comparison, examples.

``compare(net, rgb)`` runs the model and its reference filter on one image and returns 8-bit
panels (prediction, reference, |error| heat map) with PSNR, SSIM and timings, at any size: above
``TILE_ABOVE_PIXELS`` the prediction goes through ``TILE``-pixel tiles (SSIM always runs in bounded-memory row strips).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch.nn as nn

from src.dataset.images import MAX_PIXELS, read_rgb, write_png
from src.dataset.sources import embedded_images
from src.errors import UserError
from src.filters import get_filter
from src.testing.metrics import psnr, ssim
from src.testing.predict import predict

TILE = 512
TILE_ABOVE_PIXELS = 4_000_000
HEATMAP = "inferno"  # as in the evaluation grid (src.testing.evaluate.write_grid)


@dataclass
class Checkpoint:
    path: Path
    model: str
    filter: str
    filter_params: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``sobel.ckpt — compact, sobel, 52.1 dB`` (test PSNR when training recorded one)."""
        psnr_db = self.metrics.get("test_psnr")
        parts = [self.model, self.filter] + ([f"{psnr_db:.1f} dB"] if psnr_db is not None else [])
        return f"{self.path.name} — {', '.join(parts)}"


def find_checkpoints(models_dir: str | os.PathLike, extra: str | os.PathLike | None = None) -> tuple[list[Checkpoint], list[str]]:
    """Every readable ``*.ckpt`` in ``models_dir`` (plus ``extra``, first), and one line per unreadable one.

    An unreadable ``extra`` raises :class:`UserError`: the user asked for that file by name.
    """
    from src.models.checkpoint import read_checkpoint

    paths = sorted(Path(models_dir).glob("*.ckpt")) if Path(models_dir).is_dir() else []
    if extra is not None:
        extra = Path(extra)
        read_checkpoint(extra)  # raises a readable error for a missing or foreign file
        paths = [extra] + [p for p in paths if p.resolve() != extra.resolve()]
    found, skipped = [], []
    for p in paths:
        try:
            blob = read_checkpoint(p)
        except UserError as exc:
            skipped.append(str(exc))
            continue
        found.append(Checkpoint(p, blob["model"], blob["filter"], dict(blob["filter_params"]), dict(blob["metrics"])))
    return found, skipped


@lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> nn.Module:
    from src.models.checkpoint import load_model

    return load_model(path)


def load_checkpoint(ckpt: Checkpoint) -> nn.Module:
    """The eval-mode network of ``ckpt``, cached (reloaded when the file changes)."""
    return _load(str(ckpt.path), ckpt.path.stat().st_mtime)


def read_upload(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an uploaded file as RGB uint8; errors name the file, not the server's temp folder.

    The pixel count is checked from the header before any pixel is decoded (decompression bombs).
    """
    path = Path(path)
    try:
        return read_rgb(path, max_pixels=max_pixels)
    except UserError as exc:
        raise UserError(str(exc).replace(str(path), path.name)) from None


@dataclass
class Comparison:
    prediction: np.ndarray  # uint8 (H, W) or (H, W, 3)
    reference: np.ndarray  # uint8, same shape
    error_map: np.ndarray  # uint8 (H, W, 3), |prediction - reference| / max_error through HEATMAP
    psnr: float
    ssim: float
    max_error: float
    model_seconds: float
    reference_seconds: float
    tile: int | None

    def summary(self) -> str:
        """One Markdown paragraph: metrics, timings, size and how the image went through."""
        h, w = self.prediction.shape[:2]
        how = f"tiled ({self.tile} px tiles)" if self.tile else "whole image"
        ssim_txt = "n/a (under 11 px)" if math.isnan(self.ssim) else f"{self.ssim:.4f}"
        return (f"**PSNR** {self.psnr:.2f} dB · **SSIM** {ssim_txt} · **time** model {self.model_seconds:.3f} s, "
                f"reference {self.reference_seconds:.3f} s · {w}×{h} px, {how} · "
                f"heat map scaled to max |error| = {self.max_error:.4g}")


def compare(net: nn.Module, rgb: np.ndarray, filter_name: str, filter_params: dict[str, Any] | None = None) -> Comparison:
    """Prediction of ``net`` vs the reference filter on ``rgb`` (RGB uint8 ``(H, W, 3)``), any size."""
    flt = get_filter(filter_name, **(filter_params or {}))
    tile = TILE if rgb.shape[0] * rgb.shape[1] > TILE_ABOVE_PIXELS else None
    t0 = time.perf_counter()
    pred = predict(net, rgb, tile=tile)
    t1 = time.perf_counter()
    ref = flt(rgb)
    t2 = time.perf_counter()
    if pred.shape != ref.shape:
        raise UserError(f"model output {pred.shape} does not match the {filter_name!r} reference {ref.shape}")
    err = np.abs(pred - ref, dtype=np.float32)
    err = err.max(axis=2) if err.ndim == 3 else err
    max_error = float(err.max())
    return Comparison(
        prediction=to_uint8(pred), reference=to_uint8(ref), error_map=heatmap(err, max_error),
        psnr=psnr(pred, ref), ssim=ssim(pred, ref), max_error=max_error,
        model_seconds=t1 - t0, reference_seconds=t2 - t1, tile=tile,
    )


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Float ``[0, 1]`` -> uint8, rounded (as ``write_png`` and the 8-bit API output)."""
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


def heatmap(err: np.ndarray, vmax: float) -> np.ndarray:
    """``(H, W)`` errors -> RGB uint8 through the ``HEATMAP`` colormap, 0 -> dark, ``vmax`` -> bright.

    A 256-entry lookup table, so a 50 MP map costs 150 MB rather than matplotlib's float RGBA copy.
    """
    import matplotlib

    lut = np.round(matplotlib.colormaps[HEATMAP](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)
    scale = 255.0 / vmax if vmax > 0 else 0.0
    idx = np.clip(np.round(err * np.float32(scale)), 0, 255).astype(np.uint8)
    return lut[idx]


def write_examples(dest: str | os.PathLike, split: str = "test") -> list[Path]:
    """The bundled scikit-image photos of ``split`` as PNG files in ``dest`` (for the demo's examples)."""
    dest = Path(dest)
    paths = []
    for im in embedded_images(split):
        p = dest / f"{im.name}.png"
        if not p.exists():
            write_png(p, im.rgb.astype(np.float32) / 255.0)
        paths.append(p)
    return paths
