"""The LightningModule that trains Pix2Pix: U-Net generator + PatchGAN discriminator, manual optimisation.

Everything else (targets on the device, whole-image validation PSNR/SSIM, the Lightning checkpoint that
``load_model`` reads) is :class:`~src.models.lit.FilterRegressor`'s; only the losses and optimisers differ.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from src.models.lit import FilterRegressor, image_psnr
from src.models.pix2pix import PatchDiscriminator, init_weights


def linear_decay(total_steps: int | None, constant_fraction: float = 0.5):
    """LR factor per step: 1 for the first ``constant_fraction`` of ``total_steps``, then linearly to 0.

    ``total_steps=None`` (a run bounded by time, not steps) keeps the LR constant.
    """
    if not total_steps:
        return lambda step: 1.0
    start = int(total_steps * constant_fraction)
    return lambda step: max(0.0, 1.0 - max(0, step - start) / max(1, total_steps - start))


class Pix2PixModule(FilterRegressor):
    """Conditional GAN + ``lambda_l1`` * L1 (Isola et al.): D learns real (x, y) vs fake (x, G(x)) patches,
    G learns to fool D while staying close to the target. Adam(lr, beta1=0.5) for both, constant-then-linear
    LR decay over ``total_steps`` batches. ``self.net`` is the generator (what ``load_model`` returns),
    ``self.disc`` the discriminator.

    ``gan_weight`` scales the generator's adversarial term: 0 trains the same generator with the same
    optimiser, schedule and batches on ``lambda_l1`` * L1 alone (the discriminator still trains, unused),
    which is the L1-only arm of the GAN ablation (``src.studies.ablation_gan``).

    ``channels_last`` and ``compile`` are speed knobs (GPU): NHWC tensors for the convolutions, and
    ``torch.compile`` of both networks (state-dict names unchanged).
    """

    def __init__(
        self,
        model_kwargs: dict[str, Any] | None = None,
        filter_name: str = "sobel",
        filter_params: dict[str, Any] | None = None,
        lr: float = 2e-4,
        beta1: float = 0.5,
        lambda_l1: float = 100.0,
        gan_weight: float = 1.0,
        disc_kwargs: dict[str, Any] | None = None,
        total_steps: int | None = None,
        constant_fraction: float = 0.5,
        channels_last: bool = False,
        compile: bool = False,
        model_name: str = "pix2pix",
        seed: int = 0,
    ):
        super().__init__(model_name, model_kwargs, filter_name, filter_params, loss="l1", lr=lr, seed=seed)
        self.hparams.update(beta1=beta1, lambda_l1=lambda_l1, gan_weight=gan_weight, disc_kwargs=dict(disc_kwargs or {}),  # as given
                            total_steps=total_steps, constant_fraction=constant_fraction,
                            channels_last=channels_last, compile=compile)
        self.automatic_optimization = False
        init_weights(self.net)
        # The discriminator is as wide as the generator unless told otherwise (64 and 64 in the paper).
        disc_kwargs = {"ndf": self.net.config.get("ngf", 64)} | dict(disc_kwargs or {})
        self.disc = init_weights(PatchDiscriminator(out_channels=self.filter.out_channels, **disc_kwargs))
        if channels_last:
            self.to(memory_format=torch.channels_last)
        if compile:
            self.net.compile()
            self.disc.compile()

    def _pair(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = super()._pair(batch)
        if self.hparams.channels_last:
            x, y = x.contiguous(memory_format=torch.channels_last), y.contiguous(memory_format=torch.channels_last)
        return x, y

    @staticmethod
    def _gan_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
        target = torch.ones_like(logits) if real else torch.zeros_like(logits)
        return F.binary_cross_entropy_with_logits(logits.float(), target.float())

    steps_per_batch = 2  # one generator and one discriminator step per batch

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        opt_g, opt_d = self.optimizers()
        x, y = self._pair(batch)
        fake = self.net(x)

        # Discriminator: real pairs -> 1, generated pairs -> 0 (the paper halves D's loss).
        _requires_grad(self.disc, True)
        loss_d = 0.5 * (self._gan_loss(self.disc(x, y), True) + self._gan_loss(self.disc(x, fake.detach()), False))
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        opt_d.step()

        # Generator: fool the (now frozen) discriminator, stay close to the target in L1.
        _requires_grad(self.disc, False)
        loss_gan = self._gan_loss(self.disc(x, fake), True)
        loss_l1 = F.l1_loss(fake.float(), y.float())
        loss_g = self.hparams.gan_weight * loss_gan + self.hparams.lambda_l1 * loss_l1
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss_g)
        opt_g.step()
        _requires_grad(self.disc, True)

        for sched in self.lr_schedulers():
            sched.step()
        self.log_dict({"g_loss": loss_g.detach(), "g_gan": loss_gan.detach(), "g_l1": loss_l1.detach(),
                       "d_loss": loss_d.detach()}, prog_bar=False)
        self.log("train_psnr", image_psnr(fake.detach().clamp(0, 1), y), prog_bar=True)
        return loss_g.detach()

    def configure_optimizers(self):
        betas = (self.hparams.beta1, 0.999)
        opt_g = torch.optim.Adam(self.net.parameters(), lr=self.hparams.lr, betas=betas)
        opt_d = torch.optim.Adam(self.disc.parameters(), lr=self.hparams.lr, betas=betas)
        total = self.hparams.total_steps
        decay = linear_decay(total, self.hparams.constant_fraction)
        scheds = [torch.optim.lr_scheduler.LambdaLR(o, decay) for o in (opt_g, opt_d)]
        return [opt_g, opt_d], scheds


def _requires_grad(net: nn.Module, flag: bool) -> None:
    for p in net.parameters():
        p.requires_grad_(flag)
