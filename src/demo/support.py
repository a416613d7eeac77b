"""What the Gradio demo shows, without Gradio: checkpoints by label, one comparison, examples.

``compare(net, rgb)`` runs the model and its reference filter on one image and returns 8-bit
panels (prediction, reference, |error| heat map) with PSNR, SSIM and timings, at any size: above
``TILE_ABOVE_PIXELS`` the prediction goes through ``TILE``-pixel tiles (SSIM always runs in bounded-memory row strips).
Above ``SAMPLE_ABOVE_PIXELS`` SSIM is averaged over evenly spaced row strips of that many pixels, and above
``PREVIEW_ABOVE_PIXELS`` the reference and heat map are ``PREVIEW_PIXELS`` previews (the summary says both);
PSNR and the prediction are always exact and full size. ``write_panels`` writes the panels as fast-compressed PNG files.
A prediction holding NaN or Inf is refused (:class:`src.inference.predict.NonFiniteOutput`), never scored.
"""
from __future__ import annotations

import math
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch.nn as nn

from src.dataset.sources import embedded_images
from src.errors import UserError
from src.evaluation.metrics import psnr, ssim, ssim_is_sampled
from src.filters import available, stored_filter
from src.inference.predict import predict
from src.io.files import atomic_write_bytes
from src.io.images import MAX_PIXELS, read_rgb, to_uint8, write_png
from src.models.checkpoint import load_model, read_checkpoint

TILE = 512
TILE_ABOVE_PIXELS = 4_000_000
SAMPLE_ABOVE_PIXELS = 4_000_000  # SSIM on a sample of rows above this (an estimate, stated in the summary)
PREVIEW_ABOVE_PIXELS, PREVIEW_PIXELS = 8_000_000, 4_000_000  # reference and heat map: previews above this
# The panels' PNG encoding: zlib level 1 with run-length matching; measured on a 1 MP comparison, 3 panels in
# 174 ms vs 267 ms (level 1, default strategy) and 327 ms (level 3), files within 10 % (Pillow's default is 6).
PNG_OPTIONS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
HEATMAP = "inferno"
OPERATORS_DIR = "operators"  # models/operators/<filter>.ckpt: the learned expensive operators (make operators)  # as in the evaluation grid (src.evaluation.evaluate.write_grid)


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
        name = f"{OPERATORS_DIR}/{self.path.name}" if self.path.parent.name == OPERATORS_DIR else self.path.name
        return f"{name} — {', '.join(parts)}"


def find_checkpoints(models_dir: str | os.PathLike, extra: str | os.PathLike | None = None,
                     trust_filter: bool = False) -> tuple[list[Checkpoint], list[str]]:
    """Every valid ``*.ckpt`` in ``models_dir`` and its ``operators/`` (plus ``extra``, first), and one line per
    refused one.

    Checkpoints are validated in full (fields, bounds, sizes, finite weights and metrics); one whose filter
    is code (``module:function``) is refused unless ``trust_filter``. An invalid ``extra`` raises
    :class:`UserError`: the user asked for that file by name.
    """
    folder = Path(models_dir)
    paths = sorted(folder.glob("*.ckpt")) + sorted((folder / OPERATORS_DIR).glob("*.ckpt")) if folder.is_dir() else []
    if extra is not None:
        extra = Path(extra)
        _checked(read_checkpoint(extra), extra, trust_filter, available())  # a readable error for the named file
        paths = [extra] + [p for p in paths if p.resolve() != extra.resolve()]
    found, skipped = [], []
    for p in paths:
        try:
            found.append(_checked(read_checkpoint(p), p, trust_filter, available()))
        except UserError as exc:
            skipped.append(str(exc))
    return found, skipped


def _checked(blob: dict, path: Path, trust_filter: bool, registered: dict) -> Checkpoint:
    name = blob["filter"]
    if name not in registered and ":" in name and not trust_filter:
        raise UserError(f"{path}: filter {name!r} is code named inside the checkpoint and is not imported "
                        "(start the demo with --trust-filter to allow it)")
    if name not in registered and ":" not in name:
        raise UserError(f"{path}: unknown filter {name!r}; available: {', '.join(sorted(registered))}")
    return Checkpoint(path, blob["model"], blob["filter"], dict(blob["filter_params"]), dict(blob["metrics"]))


@lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> nn.Module:
    return load_model(path)


def load_checkpoint(ckpt: Checkpoint) -> nn.Module:
    """The eval-mode network of ``ckpt``, cached (reloaded when the file changes)."""
    return _load(str(ckpt.path), ckpt.path.stat().st_mtime)


def read_upload(path: str | os.PathLike, max_pixels: int = MAX_PIXELS, notes: list[str] | None = None) -> np.ndarray:
    """Read an uploaded file as RGB uint8; errors name the file, not the server's temp folder.

    The pixel count is checked from the header before any pixel is decoded (decompression bombs).
    Conversions worth stating (float range, transparency, first of many frames) go into ``notes``.
    """
    path = Path(path)
    try:
        return read_rgb(path, max_pixels=max_pixels, notes=notes)
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
    ssim_sample: int | None = None  # pixels SSIM was averaged over, when a sample
    preview: tuple[int, int] | None = None  # (w, h) of the reference and heat map when they are previews

    def summary(self) -> str:
        """One Markdown paragraph: metrics, timings, size and how the image went through."""
        h, w = self.prediction.shape[:2]
        how = f"tiled ({self.tile} px tiles)" if self.tile else "whole image"
        ssim_txt = "n/a (under 11 px)" if math.isnan(self.ssim) else f"{self.ssim:.4f}"
        if self.ssim_sample and not math.isnan(self.ssim):
            ssim_txt += f" (estimated on a {self.ssim_sample / 1e6:.0f} MP sample of rows)"
        shown = (f" · reference and heat map shown as {self.preview[0]}×{self.preview[1]} previews "
                 "(metrics and prediction at full size)") if self.preview else ""
        return (f"**PSNR** {self.psnr:.2f} dB · **SSIM** {ssim_txt} · **time** model {self.model_seconds:.3f} s, "
                f"reference {self.reference_seconds:.3f} s · {w}×{h} px, {how} · "
                f"heat map scaled to max |error| = {self.max_error:.4g}{shown}")


def compare(net: nn.Module, rgb: np.ndarray, filter_name: str, filter_params: dict[str, Any] | None = None,
            trust_filter: bool = False) -> Comparison:
    """Prediction of ``net`` vs the reference filter on ``rgb`` (RGB uint8 ``(H, W, 3)``), any size.

    ``filter_name`` comes from a checkpoint: a ``module:function`` name is imported only with ``trust_filter``.
    """
    flt = stored_filter(filter_name, dict(filter_params or {}), trust_filter)
    tile = TILE if rgb.shape[0] * rgb.shape[1] > TILE_ABOVE_PIXELS else None
    t0 = time.perf_counter()
    pred = predict(net, rgb, tile=tile)  # NaN/Inf output raises: no panel, no score
    t1 = time.perf_counter()
    ref = flt(rgb)
    t2 = time.perf_counter()
    if pred.shape != ref.shape:
        raise UserError(f"model output {pred.shape} does not match the {filter_name!r} reference {ref.shape}")
    scores = dict(psnr=psnr(pred, ref), ssim=ssim(pred, ref, max_pixels=SAMPLE_ABOVE_PIXELS))
    sampled = ssim_is_sampled(pred.shape, SAMPLE_ABOVE_PIXELS)
    preview = _preview_size(pred.shape)
    prediction, reference = to_uint8(pred), to_uint8(_shrink(ref, preview))
    err = np.abs(np.subtract(pred, ref, out=pred), out=pred)  # in place: one 50 MP float image less
    del ref
    err = err.max(axis=2) if err.ndim == 3 else err
    max_error = float(err.max())
    return Comparison(
        prediction=prediction, reference=reference, error_map=heatmap(_shrink(err, preview), max_error), **scores,
        max_error=max_error, model_seconds=t1 - t0, reference_seconds=t2 - t1, tile=tile,
        ssim_sample=SAMPLE_ABOVE_PIXELS if sampled else None, preview=preview,
    )


def _preview_size(shape: tuple[int, ...]) -> tuple[int, int] | None:
    """``(w, h)`` of the reference and heat-map previews for an image over ``PREVIEW_ABOVE_PIXELS``, else None."""
    h, w = shape[:2]
    if h * w <= PREVIEW_ABOVE_PIXELS:
        return None
    f = (PREVIEW_PIXELS / (h * w)) ** 0.5
    return max(1, round(w * f)), max(1, round(h * f))


def _shrink(img: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    return img if size is None else cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def write_panel(path: str | os.PathLike, img: np.ndarray, name: str) -> str:
    """One uint8 panel, gray or RGB, as a fast PNG (``PNG_OPTIONS``), written atomically; returns its path."""
    if img.ndim == 3:  # OpenCV writes BGR: swap in place (and back below) rather than copy 150 MB
        cv2.cvtColor(img, cv2.COLOR_RGB2BGR, dst=img)
    try:
        ok, buf = cv2.imencode(".png", img, PNG_OPTIONS)
    finally:
        if img.ndim == 3:
            cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=img)
    if not ok:
        raise UserError(f"could not encode the {name} panel as PNG")
    atomic_write_bytes(path, buf.tobytes())
    return str(path)


def write_panels(result: Comparison, folder: str | os.PathLike) -> tuple[str, str, str]:
    """The prediction, reference and heat map as PNG files in ``folder``."""
    folder = Path(folder)
    return tuple(write_panel(folder / f"{name}.png", img, name) for name, img in (
        ("prediction", result.prediction), ("reference", result.reference), ("error", result.error_map)))


def heatmap(err: np.ndarray, vmax: float) -> np.ndarray:
    """``(H, W)`` errors -> RGB uint8 through the ``HEATMAP`` colormap, 0 -> dark, ``vmax`` -> bright.

    A 256-entry lookup table, so a 50 MP map costs 150 MB rather than matplotlib's float RGBA copy.
    """
    import matplotlib  # start-up: matplotlib only when called

    lut = np.round(matplotlib.colormaps[HEATMAP](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)
    scale = 255.0 / vmax if vmax > 0 else 0.0
    idx = np.clip(np.round(err * np.float32(scale)), 0, 255).astype(np.uint8)
    return lut[idx]


class HeavyGate:
    """Large requests one lane of their own: ``workers`` run at once, ``waiting`` more wait, others are refused.

    The server's worker threads outnumber ``workers + waiting``, so small requests always find a free one.
    """
    def __init__(self, workers: int = 1, waiting: int = 2):
        self._run = threading.BoundedSemaphore(workers)
        self._lock = threading.Lock()
        self._inside, self.limit = 0, workers + waiting

    @contextmanager
    def slot(self):
        with self._lock:
            if self._inside >= self.limit:
                raise UserError(f"{self._inside} large images are being processed or waiting; try again in a minute "
                                "(images up to the large-image threshold are not held back)")
            self._inside += 1
        try:
            with self._run:
                yield
        finally:
            with self._lock:
                self._inside -= 1


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
