"""Teach by example: learn a filter from one *before* / *after* pair of images.

    from src.training.teach import teach
    checkpoint, summary = teach("before.png", "after.png", model="compact", max_steps=150, workdir="out/teach")

The pair is cut into a training part (the top rows) and a held-out stripe (the bottom ``HOLDOUT``
= 20 % of the rows) that no training crop touches. Training is the project's recipe for learning a
black-box filter from examples (:mod:`src.dataset.pairs` through :func:`src.training.train.train`:
random crops, Adam, the compact net's L-BFGS finish, early stopping); the held-out stripe is its
validation split, so the best checkpoint is chosen on it and the reported PSNR/SSIM are measured on it,
beside the trivial baseline (the better of predicting the *before* image and predicting zeros).

The checkpoint is the project's normal format (``src.models.load_model`` reads it), with the filter
recorded as ``pairs`` (the examples, not a filter that can be recomputed on other images). Setting the
``stop`` event ends training after the step in flight and keeps the best weights so far.
"""
from __future__ import annotations

import logging
import math
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import pytorch_lightning as pl

from src.errors import UserError
from src.evaluation.metrics import psnr, ssim
from src.inference.predict import predict
from src.io.images import read_rgb, to_rgb_uint8, write_png
from src.models import build_model, load_model, save_model
from src.training.config import CAN_ARGS, TrainConfig
from src.training.train import train

HOLDOUT = 0.2  # the bottom fifth of the rows: validation, never a training crop
MAX_PAIR_PIXELS = 12_000_000  # each image of the pair
MIN_SIDE = 64  # so the held-out stripe is >= 13 rows (SSIM needs 11)
MAX_STEPS = 3000  # the step budget cap
TEACH_MODELS = ("compact", "can", "bilateral-grid")
DEFAULT_STEPS = {"compact": 150, "can": 600, "bilateral-grid": 300}
# Compact nets: one gray channel for a gray output (a gradient pair plus a linear response: Sobel-like and
# linear filters are both exact), the RGB bank for a colour output (as the zoo's compact runs).
COMPACT_ARGS = {1: {"mix": 1, "pairs": 1, "linear": 1}, 3: {"mix": 0, "pairs": 1, "linear": 3}}
STEPS_PER_VALIDATION = {"compact": 10, "can": 20, "bilateral-grid": 20}  # a point on the live curve every N steps
PATIENCE = {"compact": 10, "can": 30, "bilateral-grid": 10}  # validations without gain before the plateau rule acts
# Crops: the bilateral grid's low-resolution stream sees each crop at 256 px, so it learns from large crops (a
# smaller pair is padded); the local networks from the default 64 px.
CROP = {"compact": 64, "can": 64, "bilateral-grid": 256}

Progress = Callable[[dict[str, Any]], None]


def _image(x: Any, what: str) -> np.ndarray:
    """A path or an array -> RGB uint8, with the pair's pixel limit; errors say which image."""
    if isinstance(x, (str, os.PathLike)):
        try:
            return read_rgb(x, max_pixels=MAX_PAIR_PIXELS)
        except UserError as exc:
            raise UserError(f"{what} image: {exc}") from None
    if not isinstance(x, np.ndarray):
        raise UserError(f"{what} image: expected a file path or a numpy array, got {type(x).__name__}")
    if x.shape[0] * (x.shape[1] if x.ndim > 1 else 1) > MAX_PAIR_PIXELS:
        raise UserError(f"{what} image: {x.shape[1]}x{x.shape[0]} is over the {MAX_PAIR_PIXELS / 1e6:.0f} MP limit")
    try:
        return to_rgb_uint8(x)
    except UserError as exc:
        raise UserError(f"{what} image: {exc}") from None


def check_pair(before: Any, after: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """The pair as RGB uint8 arrays and the output's channel count (1 when *after* is gray), or one UserError."""
    b, a = _image(before, "before"), _image(after, "after")
    if b.shape != a.shape:
        raise UserError(f"the before and after images differ in size: {b.shape[1]}x{b.shape[0]} vs "
                        f"{a.shape[1]}x{a.shape[0]}; give the same picture before and after the filter")
    h, w = b.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise UserError(f"the pair is {w}x{h}; teaching needs at least {MIN_SIDE}x{MIN_SIDE} pixels")
    if a.min() == a.max():
        raise UserError(f"the after image is constant (every value {int(a.min())}): there is nothing to learn from it")
    gray = bool((a[..., 0] == a[..., 1]).all() and (a[..., 0] == a[..., 2]).all())
    return b, a, 1 if gray else 3


def holdout_row(height: int) -> int:
    """First row of the held-out stripe (the bottom ``HOLDOUT`` of the image)."""
    return height - max(1, round(height * HOLDOUT))


def baselines(before: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """PSNR on ``target`` (float, ``(H, W)`` or ``(H, W, 3)``) of predicting the *before* image and of zeros."""
    x = before.astype(np.float32) / np.float32(255.0)
    identity = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY) if target.ndim == 2 else x
    return {"identity": psnr(identity, target), "zeros": psnr(np.zeros_like(target), target)}


def _target(after: np.ndarray, channels: int) -> np.ndarray:
    t = after.astype(np.float32) / np.float32(255.0)
    return t[..., 0] if channels == 1 else t


def model_args(model: str, channels: int) -> dict[str, Any]:
    if model == "compact":
        return dict(COMPACT_ARGS[channels])
    if model == "bilateral-grid":
        return {}  # its defaults: one cell per 8 x 8 pixels, 16 bins, the bins' statistics

    return dict(CAN_ARGS)


class _Watch(pl.Callback):
    """Reports the run to ``progress`` and ends it when ``stop`` is set (after the step in flight)."""

    def __init__(self, progress: Progress | None, stop: threading.Event | None, max_steps: int, baseline: float):
        self.progress, self.stop, self.max_steps, self.baseline = progress, stop, max_steps, baseline
        self._last = 0.0

    def _report(self, trainer: pl.Trainer, val_psnr: float | None) -> None:
        if self.progress is not None:
            self.progress({"step": trainer.global_step, "max_steps": self.max_steps, "val_psnr": val_psnr,
                           "baseline_psnr": self.baseline})

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.stop is not None and self.stop.is_set():
            trainer.should_stop = True
        if time.monotonic() - self._last > 0.5:
            self._last = time.monotonic()
            self._report(trainer, None)

    def on_validation_end(self, trainer, module) -> None:
        value = trainer.callback_metrics.get("val_psnr")
        if value is not None and math.isfinite(float(value)):
            self._report(trainer, float(value))


def _train_on_folders(model: str, kwargs: dict[str, Any], in_dir: Path, out_dir: Path, output: Path,
                      max_steps: int, seed: int, callbacks: list) -> dict[str, Any]:
    """The one call into the training entry point."""
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    cfg = TrainConfig(model=model, model_kwargs=dict(kwargs), pairs=(str(in_dir), str(out_dir)), max_steps=max_steps,
                      steps_per_epoch=STEPS_PER_VALIDATION[model], patience=PATIENCE[model], seed=seed, crop=CROP[model],
                      output=str(output), run_dir=str(output.parent / "run"), logger="none", test=False, quiet=True)
    if model == "compact":  # the L-BFGS finish after two thirds of the budget (100 of the default 150)
        cfg.finish_after = max(1, 2 * max_steps // 3)
    return train(cfg, callbacks=callbacks)


def _step_budget(model: str, max_steps: int | None) -> int:
    """The step budget, checked: ``DEFAULT_STEPS[model]`` if None, at most ``MAX_STEPS``."""
    if model not in TEACH_MODELS:
        raise UserError(f"unknown model {model!r} for teaching; available: {', '.join(TEACH_MODELS)}")
    max_steps = DEFAULT_STEPS[model] if max_steps is None else max_steps
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or not 1 <= max_steps <= MAX_STEPS:
        raise UserError(f"the step budget must be a whole number in 1..{MAX_STEPS}, got {max_steps!r}")
    return int(max_steps)


def _pair_folders(work: Path, model: str, channels: int, before: np.ndarray, after: np.ndarray,
                  cut: int) -> tuple[Path, Path]:
    """The pair as a --pairs folder: the top part trains, the bottom stripe validates (explicit split folders).

    The validation image starts `radius` rows higher: context for the stripe's first rows, a ring that
    validation leaves out (src.models.lit.FilterRegressor._scored), so only held-out targets are scored."""
    radius = int(build_model(model, out_channels=channels, **model_args(model, channels)).receptive_radius)
    top = max(0, cut - radius)
    in_dir, out_dir = work / "before", work / "after"
    for folder, img in ((in_dir, before), (out_dir, after)):
        write_png(folder / "train" / "pair.png", img[:cut].astype(np.float32) / np.float32(255.0))
        write_png(folder / "val" / "pair.png", img[top:].astype(np.float32) / np.float32(255.0))
    return in_dir, out_dir


def teach(before: Any, after: Any, model: str = "compact", max_steps: int | None = None,
          workdir: str | os.PathLike | None = None, progress: Progress | None = None,
          stop: threading.Event | None = None, seed: int = 0, source: str | None = None) -> tuple[Path, dict[str, Any]]:
    """Learn the filter that turns ``before`` into ``after``; returns ``(checkpoint path, summary)``.

    ``before``, ``after``: image files or arrays of the same size (at most ``MAX_PAIR_PIXELS`` each).
    ``model``: ``compact`` (gray or RGB bank, chosen from *after*) or ``can``. ``max_steps``: the
    budget in optimiser steps (default ``DEFAULT_STEPS``, at most ``MAX_STEPS``). Everything is written
    under ``workdir`` (a new temporary folder if None). ``progress`` gets ``{"step", "max_steps",
    "val_psnr" (None between validations), "baseline_psnr"}``; ``stop`` ends training early, keeping the
    best weights so far. ``source``: what made *after* (a zoo filter's name), recorded in the checkpoint.
    The summary holds the held-out stripe's PSNR/SSIM, the baseline's, and the gain over it in dB.
    """
    max_steps = _step_budget(model, max_steps)
    b, a, channels = check_pair(before, after)
    work = Path(tempfile.mkdtemp(prefix="teach-") if workdir is None else workdir)
    cut = holdout_row(b.shape[0])
    target = _target(a[cut:], channels)
    base = baselines(b[cut:], target)
    base_kind = max(base, key=base.get)
    in_dir, out_dir = _pair_folders(work, model, channels, b, a, cut)
    output = work / "learned.ckpt"
    watch = _Watch(progress, stop, max_steps, base[base_kind])
    t0 = time.perf_counter()
    result = _train_on_folders(model, model_args(model, channels), in_dir, out_dir, output, max_steps, seed, [watch])
    seconds = time.perf_counter() - t0


    net = load_model(output)
    pred, _ = holdout_prediction(net, b, a, channels)
    scores = {"psnr": psnr(pred, target), "ssim": ssim(pred, target)}
    stopped_by = "stop" if stop is not None and stop.is_set() else result["stopped_by"]
    h, w = b.shape[:2]
    summary: dict[str, Any] = {
        "model": model, "model_kwargs": model_args(model, channels), "channels": channels,
        "params": result["params"], "size": [w, h], "holdout_rows": [cut, h], "holdout": f"bottom {h - cut} of {h} rows",
        "holdout_psnr": scores["psnr"], "holdout_ssim": None if math.isnan(scores["ssim"]) else scores["ssim"],
        "baseline": base_kind, "baseline_psnr": base[base_kind], "identity_psnr": base["identity"],
        "zeros_psnr": base["zeros"], "gain_db": scores["psnr"] - base[base_kind],
        "steps": result["steps"], "max_steps": max_steps, "stopped_by": stopped_by,
        "train_seconds": round(seconds, 1), "source": source,
    }
    # Re-saved with the held-out scores and without the server's folders (the filter is the examples).
    metrics = {k: summary[k] for k in ("holdout_psnr", "holdout_ssim", "baseline_psnr") if summary[k] is not None}
    info = {**net.meta.get("info", {}), "taught": True, "holdout": summary["holdout"], "baseline": base_kind,
            "source": source, "stopped_by": stopped_by}
    save_model(output, net, model, "pairs", {"in_dir": "before", "out_dir": "after"}, metrics=metrics, info=info)
    return output, summary


def holdout_prediction(net, before: np.ndarray, after: np.ndarray, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """``(prediction, target)`` on the held-out stripe, float in [0, 1]; the network sees the rows above the
    stripe as context, as it would in the whole image (``before``, ``after``: the pair as RGB uint8)."""
    cut = holdout_row(before.shape[0])
    top = max(0, cut - int(getattr(net, "receptive_radius", 0)))
    return predict(net, before[top:])[cut - top:], _target(after[cut:], channels)


def describe(summary: dict[str, Any]) -> str:
    """One paragraph for people: the held-out scores against the baseline, and how the run ended."""
    ssim_txt = "n/a" if summary["holdout_ssim"] is None else f"{summary['holdout_ssim']:.4f}"
    return (f"held-out stripe ({summary['holdout']}): PSNR {summary['holdout_psnr']:.2f} dB, SSIM {ssim_txt}; "
            f"baseline ({summary['baseline']}) {summary['baseline_psnr']:.2f} dB, the model is "
            f"{summary['gain_db']:+.2f} dB better · {summary['model']} ({summary['params']} parameters), "
            f"{summary['steps']} of {summary['max_steps']} steps ({summary['stopped_by']}) in {summary['train_seconds']:.0f} s")
