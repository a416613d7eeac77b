"""What a training run is: :class:`TrainConfig`, every option of ``python -m src.experiment.train`` as a typed
field, and ``MODEL_DEFAULTS``, the one table of per-model defaults that fills the fields left at ``None``.

    from src.experiment.config import TrainConfig
    from src.experiment.train import train
    result = train(TrainConfig(model="can", filter="detail-enhance", max_steps=600, output="models/can.ckpt"))

May import: :mod:`src.errors`, :mod:`src.models` (network names and the U-Net depth rule).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from src.errors import UserError

# The one table of per-model training defaults. Budgets are optimiser steps, so a busy machine gives the
# same model as an idle one, only later. ``threads``: the default cap (the compact net's convolutions are
# too small to gain from a second thread that another process may be using; see the knobs table).
MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "compact": dict(lr=3e-2, max_steps=150, steps_per_epoch=25, finish="lbfgs", finish_after=100, patience=4,
                    batch_size=32, threads=1),
    "autoencoder": dict(lr=1e-3, max_steps=2000, steps_per_epoch=100, finish="none", patience=8, batch_size=32),
    "can": dict(lr=1e-3, max_steps=2000, steps_per_epoch=20, finish="none", patience=30, batch_size=16),
    "pix2pix": dict(lr=2e-4, max_steps=2000, steps_per_epoch=100, finish="none", patience=1000, batch_size=32),
    "unet": dict(lr=2e-4, max_steps=1000, steps_per_epoch=100, finish="none", patience=1000, batch_size=32),
}
DEFAULTED = ("lr", "max_steps", "steps_per_epoch", "batch_size", "finish", "patience")
# Settings that define a run: --resume refuses a checkpoint whose values differ.
RUN_KEYS = ("model", "model_kwargs", "filter", "filter_params", "data", "crop", "batch_size", "steps_per_epoch",
            "max_steps", "loss", "lr", "lambda_l1", "gan_weight", "finish", "finish_after", "seed", "patience",
            "lr_patience")
# Run keys added after runs were saved without them, with the value those runs used (so they still resume).
ADDED_RUN_KEYS: dict[str, Any] = {"gan_weight": 1.0}
DEFAULT_OUTPUTS = {("compact", "sobel"): "models/sobel.ckpt", ("autoencoder", "sobel"): "models/autoencoder.ckpt",
                   ("pix2pix", "sobel"): "models/pix2pix.ckpt", ("unet", "sobel"): "models/unet.ckpt"}


@dataclass
class TrainConfig:
    """One training run. ``None`` means "the model's default" (``MODEL_DEFAULTS``); :meth:`resolved` fills them.

    >>> cfg = TrainConfig(model="can", max_steps=600).resolved()
    >>> cfg.lr, cfg.max_steps, cfg.batch_size, cfg.finish
    (0.001, 600, 16, 'none')
    """

    # what is learned, from what
    model: str = "compact"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    filter: str = "sobel"
    filter_params: dict[str, Any] = field(default_factory=dict)
    pairs: tuple[str, str] | None = None  # (inputs folder, outputs folder): replaces filter and data
    data: str | None = "skimage"
    crop: int = 64
    # the budget and the optimiser
    batch_size: int | None = None
    steps_per_epoch: int | None = None
    max_steps: int | None = None
    max_time: float | None = None
    finish: str | None = None
    finish_after: int | None = None
    limit_val_batches: float | None = None
    patience: int | None = None
    lr_patience: int = 2
    loss: str = "l1"
    lr: float | None = None
    lambda_l1: float = 100.0
    gan_weight: float = 1.0  # pix2pix: weight of the adversarial term (0: the same training on L1 alone)
    seed: int = 0
    # where and how it runs
    strategy: str = "auto"
    precision: str | None = None
    channels_last: bool = False
    compile: bool = False
    threads: int | None = None
    accelerator: str = "cpu"
    devices: int | str = 1
    num_workers: int = 0
    num_nodes: int = 1
    cache_mb: float | None = None  # decoded images kept in memory up to this budget (None: from available memory)
    logger: str = "csv"
    # outputs
    output: str | None = None
    run_dir: str = "models/runs"
    resume: bool = False
    test: bool = True
    quiet: bool = False

    def resolved(self) -> TrainConfig:
        """A copy with every ``None`` default filled from ``MODEL_DEFAULTS`` and the values checked."""
        if self.model not in MODEL_DEFAULTS:
            from src.models.networks import MODELS

            raise UserError(f"unknown model {self.model!r}; available: {', '.join(sorted(MODELS))}")
        d = MODEL_DEFAULTS[self.model]
        cfg = dataclasses.replace(self, model_kwargs=dict(self.model_kwargs), filter_params=dict(self.filter_params))
        for key in DEFAULTED:
            if getattr(cfg, key) is None:
                setattr(cfg, key, d[key])
        if cfg.finish_after is None and cfg.finish != "none":
            cfg.finish_after = d.get("finish_after")
        if cfg.pairs:  # a black-box filter known from examples (src.filters.pairs); checked before training
            cfg.filter, cfg.filter_params, cfg.data = "pairs", {"in_dir": cfg.pairs[0], "out_dir": cfg.pairs[1]}, None
        for key in ("max_steps", "steps_per_epoch", "batch_size", "crop"):
            if getattr(cfg, key) < 1:
                raise UserError(f"--{key.replace('_', '-')} must be at least 1, got {getattr(cfg, key)}")
        if cfg.model in ("pix2pix", "unet"):  # U-Net depth follows the crop: 128 -> 7, 256 -> 8
            from src.models.pix2pix import unet_depth

            cfg.model_kwargs.setdefault("depth", unet_depth(cfg.crop))
        return cfg

    def run_settings(self) -> dict[str, Any]:
        """The settings that define the run (``RUN_KEYS``), as stored in its checkpoints for ``--resume``."""
        return {k: getattr(self, k) for k in RUN_KEYS}

    @property
    def default_threads(self) -> int:
        from src.threads import available_cores

        return min(available_cores(), MODEL_DEFAULTS.get(self.model, {}).get("threads", available_cores()))
