"""The LightningModule that trains any network of ``src.models.networks`` to imitate a filter."""
from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from src.errors import UserError
from src.filters import get_filter
from src.models.networks import build_model
from src.models.layers import run_any_size

LOSSES = {"l1": F.l1_loss, "mse": F.mse_loss}


PSNR_CAP = 100.0  # dB for an exact match, as src.evaluation.metrics.psnr (the NumPy twin, for whole images)


def image_psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of per-image PSNR (torchmetrics), data range 1, identical images capped at 100 dB."""
    per_image = peak_signal_noise_ratio(pred.float(), target.float(), data_range=1.0, reduction="none",
                                        dim=tuple(range(1, pred.dim())))
    return per_image.clamp_max(PSNR_CAP).mean()


def image_ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SSIM with data range 1 (gaussian window 11, sigma 1.5, reflect-padded so borders count)."""
    if min(pred.shape[-2:]) < 11:
        return torch.tensor(float("nan"))
    return structural_similarity_index_measure(pred.float(), target.float(), data_range=1.0)


class FilterRegressor(pl.LightningModule):
    """Train ``model_name`` to map RGB to ``filter_name``'s output.

    Targets come with the batch (``batch["target"]``) or are computed here from ``batch["input"]``
    by the filter's torch implementation, on the device.

    Two stages, both ordinary training steps (counted, logged, checkpointed, resumable):

    1. Adam on random crops, the LR cut on validation plateaus;
    2. with ``finish="lbfgs"``, an L-BFGS least-squares finish on a fixed batch of ``finish_crops``
       training crops, ``finish_iters`` L-BFGS iterations per step. It starts at step ``finish_after`` or on the first
       Adam plateau (:class:`~src.training.callbacks.StagePlateau`), whichever comes first. Natural images
       excite high frequencies and colour differences only weakly, so first-order training needs
       thousands of steps to pin a kernel down; for a few hundred parameters the least-squares problem
       is well posed and L-BFGS solves it in hundreds of iterations. The finish runs in float64: at
       80 dB the loss is ~1e-8 and float32 line searches stall (measured on Sobel after 400
       iterations: val 72.6 dB in float32, 76.6 dB in float64 on 32 crops, 79.8 dB on 64). The exported
       weights are the best validation checkpoint of either stage (as float32), so the finish is kept
       only when it helps.

    Every step's randomness (crops, dropout) is a function of ``(seed, step)``: the same command gives
    the same weights, and a resumed run the weights of an uninterrupted one.
    """

    steps_per_batch = 1  # optimiser steps per training batch (Pix2Pix: 2, G and D)

    def __init__(
        self,
        model_name: str = "compact",
        model_kwargs: dict[str, Any] | None = None,
        filter_name: str = "sobel",
        filter_params: dict[str, Any] | None = None,
        loss: str = "l1",
        lr: float = 1e-2,
        weight_decay: float = 0.0,
        lr_patience: int = 2,
        lr_factor: float = 0.3,
        finish: str = "none",
        finish_after: int | None = None,
        finish_crops: int = 64,
        finish_iters: int = 4,
        seed: int = 0,
    ):
        super().__init__()
        if loss not in LOSSES:
            raise UserError(f"unknown loss {loss!r}; available: {', '.join(LOSSES)}")
        if finish not in FINISHES:
            raise UserError(f"unknown finish {finish!r}; available: {', '.join(FINISHES)}")
        self.filter = get_filter(filter_name, **(filter_params or {}))
        self.save_hyperparameters({
            "model_name": model_name, "model_kwargs": dict(model_kwargs or {}),
            "filter_name": filter_name, "filter_params": dict(self.filter.params),
            "out_channels": self.filter.out_channels, "loss": loss, "lr": lr,
            "weight_decay": weight_decay, "lr_patience": lr_patience, "lr_factor": lr_factor,
            "finish": finish, "finish_after": finish_after, "finish_crops": finish_crops,
            "finish_iters": finish_iters, "seed": seed,
        })
        self.net = build_model(model_name, out_channels=self.filter.out_channels, **(model_kwargs or {}))
        self.loss_fn = LOSSES[loss]
        self.val_psnr, self.val_ssim = MeanMetric(), MeanMetric()
        self.automatic_optimization = False  # two optimisers, one per stage
        self.finish_start: int | None = None  # the step the finish began at (saved in checkpoints)
        self._fixed: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _pair(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        x = batch["input"]
        y = batch.get("target")
        if y is None:
            with torch.no_grad():
                y = self.filter.torch(x)
        return x, y

    def _scored(self, pred: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The pixels that count. Targets cut from a larger picture (example pairs: the datamodule's
        ``targets_have_context``) depend on pixels outside the crop that the network cannot see, so their
        outer ring of the network's receptive radius is left out of the loss and of validation."""
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        m = int(getattr(self.net, "receptive_radius", 0)) if getattr(dm, "targets_have_context", False) else 0
        if m and min(y.shape[-2:]) > 2 * m:
            return pred[..., m:-m, m:-m], y[..., m:-m, m:-m]
        return pred, y

    # -- stages -------------------------------------------------------------------------------------
    @property
    def stage(self) -> str:
        return "finish" if self.finish_start is not None else "adam"

    def begin_finish(self) -> bool:
        """Switch to the finish now (called on an Adam plateau); False when there is none to start."""
        if self.hparams.finish == "none" or self.finish_start is not None:
            return False
        self.finish_start = self.global_step
        self.net.double()  # in place: the optimisers keep the same parameter objects
        return True

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Dropout and any other draw from the global RNG: a function of (seed, step), so resumable.
        torch.manual_seed(self.hparams.seed * 1_000_003 + self.global_step)
        after = self.hparams.finish_after
        if after is not None and self.global_step >= after:
            self.begin_finish()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        if self.finish_start is not None:
            return self._finish_step()
        opt = self.optimizers()
        adam = opt[0] if isinstance(opt, list) else opt
        x, y = self._pair(batch)
        pred, y = self._scored(self.net(x), y)
        loss = self.loss_fn(pred, y)
        adam.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        adam.step()
        self.log("train_loss", loss.detach(), prog_bar=True)
        self.log("train_psnr", image_psnr(pred.detach().clamp(0, 1), y), prog_bar=True)
        return loss.detach()

    def _finish_step(self) -> torch.Tensor:
        lbfgs = self.optimizers()[1]
        if self._fixed is None:  # the same crops for every L-BFGS iteration, rebuilt identically on resume
            batch = self.trainer.datamodule.fixed_batch(self.hparams.finish_crops)
            x, y = self._pair({k: v.to(self.device) for k, v in batch.items()})
            self._fixed = x.double(), y.double()
        x, y = self._fixed

        def closure() -> torch.Tensor:
            lbfgs.zero_grad(set_to_none=True)
            loss = F.mse_loss(*self._scored(self.net(x), y))
            self.manual_backward(loss)
            return loss

        loss = lbfgs.step(closure=closure).detach()
        self.log("train_loss", loss, prog_bar=True)
        self.log("train_psnr", (10 * torch.log10(1 / loss)).clamp_max(PSNR_CAP), prog_bar=True)  # loss is the MSE
        return loss

    # -- validation ---------------------------------------------------------------------------------
    def validation_step(self, batch: dict | None, batch_idx: int) -> None:
        if batch is None:  # the image became unreadable during training (the loader skipped and counted it)
            return
        x, y = self._pair(batch)
        dtype = next(self.net.parameters()).dtype  # float64 during the finish
        pred = run_any_size(self.net, x.to(dtype)).float().clamp(0, 1)  # whole images, padded to the size multiple
        pred, y = self._scored(pred, y)
        self.val_psnr.update(image_psnr(pred, y))
        ssim = image_ssim(pred, y)
        if not torch.isnan(ssim):
            self.val_ssim.update(ssim)

    def on_validation_epoch_end(self) -> None:
        val = self.val_psnr.compute()
        self.log("val_psnr", val, prog_bar=True)
        self.log("stage", float(self.finish_start is not None))
        if self.val_ssim.update_count:
            self.log("val_ssim", self.val_ssim.compute())
        self.val_psnr.reset()
        self.val_ssim.reset()
        if not self.trainer.sanity_checking and self.finish_start is None:
            for sched in _as_list(self.lr_schedulers()):
                if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    sched.step(float(val))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.net.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="max", factor=self.hparams.lr_factor, patience=self.hparams.lr_patience)
        if self.hparams.finish == "none":
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched}}
        # A few iterations per step: with max_iter=1 torch's strong-Wolfe search stalls after two steps
        # (measured: loss stuck at 3e-2 where 4-5 iterations per call reach 3e-7).
        lbfgs = torch.optim.LBFGS(self.net.parameters(), lr=1.0, max_iter=self.hparams.finish_iters, history_size=100,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-12, tolerance_change=1e-16)
        return [opt, lbfgs], [{"scheduler": sched}]

    # -- checkpoints --------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["finish_start"] = self.finish_start

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Runs before the weights are loaded: a finish-stage checkpoint holds float64 weights.
        self.finish_start = checkpoint.get("finish_start")
        if self.finish_start is not None:
            self.net.double()


FINISHES = ("none", "lbfgs")


def _as_list(x: Any) -> list:
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]
