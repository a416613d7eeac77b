"""The LightningModule that trains any network of ``src.models.networks`` to imitate a filter."""
from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.functional.image import structural_similarity_index_measure

from src.errors import UserError
from src.filters import get_filter
from src.models.networks import build_model
from src.models.layers import run_any_size

LOSSES = {"l1": F.l1_loss, "mse": F.mse_loss}


def image_psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of per-image PSNR, data range 1 (identical images cap at 100 dB)."""
    mse = ((pred.float() - target.float()) ** 2).flatten(1).mean(1)
    return (10 * torch.log10(1.0 / mse.clamp_min(1e-10))).mean()


def image_ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """SSIM with data range 1 (gaussian window 11, sigma 1.5, reflect-padded so borders count)."""
    if min(pred.shape[-2:]) < 11:
        return torch.tensor(float("nan"))
    return structural_similarity_index_measure(pred.float(), target.float(), data_range=1.0)


class FilterRegressor(pl.LightningModule):
    """Train ``model_name`` to map RGB to ``filter_name``'s output.

    Targets come with the batch (``batch["target"]``) or are computed here from ``batch["input"]``
    by the filter's torch implementation, on the device.
    """

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
    ):
        super().__init__()
        if loss not in LOSSES:
            raise UserError(f"unknown loss {loss!r}; available: {', '.join(LOSSES)}")
        self.filter = get_filter(filter_name, **(filter_params or {}))
        self.save_hyperparameters({
            "model_name": model_name, "model_kwargs": dict(model_kwargs or {}),
            "filter_name": filter_name, "filter_params": dict(self.filter.params),
            "out_channels": self.filter.out_channels, "loss": loss, "lr": lr,
            "weight_decay": weight_decay, "lr_patience": lr_patience, "lr_factor": lr_factor,
        })
        self.net = build_model(model_name, out_channels=self.filter.out_channels, **(model_kwargs or {}))
        self.loss_fn = LOSSES[loss]
        self.val_psnr, self.val_ssim = MeanMetric(), MeanMetric()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def _pair(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        x = batch["input"]
        y = batch.get("target")
        if y is None:
            with torch.no_grad():
                y = self.filter.torch(x)
        return x, y

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        x, y = self._pair(batch)
        pred = self.net(x)
        loss = self.loss_fn(pred, y)
        self.log("train_loss", loss, prog_bar=True)
        self.log("train_psnr", image_psnr(pred.detach().clamp(0, 1), y), prog_bar=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        x, y = self._pair(batch)
        pred = run_any_size(self.net, x).clamp(0, 1)  # whole images: padded to the network's size multiple
        self.val_psnr.update(image_psnr(pred, y))
        ssim = image_ssim(pred, y)
        if not torch.isnan(ssim):
            self.val_ssim.update(ssim)

    def on_validation_epoch_end(self) -> None:
        self.log("val_psnr", self.val_psnr.compute(), prog_bar=True)
        if self.val_ssim.update_count:
            self.log("val_ssim", self.val_ssim.compute())
        self.val_psnr.reset()
        self.val_ssim.reset()

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="max", factor=self.hparams.lr_factor, patience=self.hparams.lr_patience)
        # strict=False: runs without validation (limit_val_batches=0) keep a constant LR instead of failing.
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_psnr", "strict": False}}
