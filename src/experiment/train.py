"""The one training entry point: any model, any filter, any data, by name.

    python -m src.experiment.train --model compact --filter sobel --data skimage --max-time 200
"""
from __future__ import annotations

import argparse
import ast
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Sequence

from src.errors import UserError, run_cli

DEFAULT_OUTPUTS = {("compact", "sobel"): "models/sobel.ckpt", ("autoencoder", "sobel"): "models/autoencoder.ckpt"}
DEFAULT_OUTPUTS.update({("pix2pix", "sobel"): "models/pix2pix.ckpt", ("unet", "sobel"): "models/unet.ckpt"})
DEFAULT_LR = {"pix2pix": 2e-4, "unet": 2e-4}  # the paper's Adam settings; others: 3e-2


def parse_params(items: Sequence[str] | None, what: str) -> dict[str, Any]:
    """``["ksize=5", "blur=False"]`` -> ``{"ksize": 5, "blur": False}`` (values as Python literals)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise UserError(f"{what} {item!r}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key.strip()] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m src.experiment.train", description="Train a network to imitate an image filter.")
    ap.add_argument("--model", default="compact", help="network: compact, autoencoder (see src.models.MODELS)")
    ap.add_argument("--model-arg", action="append", metavar="KEY=VALUE", help="network option, e.g. kernel_size=7")
    ap.add_argument("--filter", default="sobel", help="target filter (see src.filters.available())")
    ap.add_argument("--filter-param", action="append", metavar="KEY=VALUE", help="filter parameter, e.g. ksize=5")
    ap.add_argument("--pairs", nargs=2, metavar=("IN_DIR", "OUT_DIR"), help="learn a filter from examples: "
                    "inputs and their outputs, matched by file name (replaces --filter and --data)")
    ap.add_argument("--data", default="skimage",
                    help="'skimage' (embedded, no download), mini-coco|cifar100|oxford-pets[:64|128|native], or a folder")
    ap.add_argument("--crop", type=int, default=64, help="training crop size in pixels")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps-per-epoch", type=int, default=100, help="training batches between validations")
    ap.add_argument("--max-time", type=float, default=None, help="training wall-clock budget in seconds")
    ap.add_argument("--max-epochs", type=int, default=1000)
    ap.add_argument("--max-steps", type=int, default=-1, help="stop after this many optimiser steps (-1: no limit; pix2pix makes 2 per batch, G and D)")
    ap.add_argument("--limit-val-batches", type=float, default=None,
                    help="validation images per epoch: a fraction (<= 1.0) or a count (> 1)")
    ap.add_argument("--patience", type=int, default=8, help="early stopping: epochs without val PSNR gain")
    ap.add_argument("--lr-patience", type=int, default=2,
                    help="epochs without val PSNR gain before the LR is cut by 0.3 (raise it with short epochs)")
    ap.add_argument("--loss", default="l1", choices=["l1", "mse"])
    ap.add_argument("--lr", type=float, default=None, help="learning rate (default 2e-4 for pix2pix/unet, else 3e-2)")
    ap.add_argument("--lambda-l1", type=float, default=100.0, help="pix2pix: weight of L1 against the GAN loss")
    ap.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp (with --devices N)")
    ap.add_argument("--precision", default=None, help="Lightning precision, e.g. bf16-mixed (GPU)")
    ap.add_argument("--channels-last", action="store_true", help="pix2pix: NHWC memory format (GPU speed)")
    ap.add_argument("--compile", action="store_true", help="pix2pix: torch.compile the networks")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--accelerator", default="cpu", help="cpu, gpu, auto")
    ap.add_argument("--devices", default="1", help="number of devices, or 'auto'")
    ap.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    ap.add_argument("--logger", default="csv", choices=["csv", "tensorboard", "wandb", "none"])
    ap.add_argument("--output", default=None, help="checkpoint to write (default models/<model>-<filter>.ckpt)")
    ap.add_argument("--run-dir", default="models/runs", help="folder for logs and Lightning checkpoints")
    ap.add_argument("--no-test", action="store_true", help="skip the final test-split evaluation")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return ap


def _logger(kind: str, run_dir: Path, name: str):
    import pytorch_lightning.loggers as L

    if kind == "none":
        return False
    if kind == "tensorboard":
        return L.TensorBoardLogger(run_dir, name=name)
    if kind == "wandb":
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise UserError("--logger wandb needs the wandb package (pip install wandb)") from None
        return L.WandbLogger(project="learn-filters", name=name, save_dir=str(run_dir))
    return L.CSVLogger(run_dir, name=name)


def _strategy(args: argparse.Namespace):
    """Pix2Pix's two optimisers each leave the other network without gradients: DDP must allow that."""
    if args.strategy == "ddp" and args.model == "pix2pix":
        return "ddp_find_unused_parameters_true"
    return args.strategy


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Train, keep the best validation checkpoint, export it, evaluate on the test split."""
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

    from src.dataset import FilterDataModule
    from src.filters import get_filter
    from src.models import count_parameters, save_model
    from src.models.checkpoint import read_checkpoint
    from src.models.lit import FilterRegressor

    pl.seed_everything(args.seed, workers=True, verbose=False)
    filter_params = parse_params(args.filter_param, "--filter-param")
    if args.pairs:  # a black-box filter known from examples (src.dataset.pairs); checked before training
        args.filter, filter_params = "pairs", {"in_dir": args.pairs[0], "out_dir": args.pairs[1]}
    model_kwargs = parse_params(args.model_arg, "--model-arg")
    flt = get_filter(args.filter, **filter_params)
    lr = args.lr if args.lr is not None else DEFAULT_LR.get(args.model, 3e-2)
    if args.model in ("pix2pix", "unet"):  # U-Net depth follows the crop: 128 -> 7, 256 -> 8
        from src.models.pix2pix import unet_depth

        model_kwargs.setdefault("depth", unet_depth(args.crop))
    if args.model == "pix2pix":
        from src.models.lit_pix2pix import Pix2PixModule

        module = Pix2PixModule(model_kwargs, args.filter, filter_params, lr=lr, lambda_l1=args.lambda_l1,
                               total_steps=args.max_steps // 2 if args.max_steps > 0 else None,  # G + D steps per batch
                               channels_last=args.channels_last, compile=args.compile)
    else:
        module = FilterRegressor(args.model, model_kwargs, args.filter, filter_params, loss=args.loss, lr=lr,
                                 lr_patience=args.lr_patience)
    if args.pairs:
        from src.dataset.pairs import PairsDataModule

        data = PairsDataModule(flt, crop=args.crop, batch_size=args.batch_size,
                               steps_per_epoch=args.steps_per_epoch, num_workers=args.num_workers)
    else:
        data = FilterDataModule(flt, args.data, crop=args.crop, batch_size=args.batch_size,
                                steps_per_epoch=args.steps_per_epoch, num_workers=args.num_workers,
                                pin_memory=args.accelerator not in ("cpu",))
    data.setup("fit")  # fail on bad --data before the trainer starts

    name = f"{args.model}-{flt.key}"
    run_dir = Path(args.run_dir)
    logger = _logger(args.logger, run_dir, name)
    ckpt_dir = Path(logger.log_dir if logger else run_dir / name) / "checkpoints"
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val_psnr", mode="max", save_top_k=1)
    # strict=False: a run shorter than one epoch (--max-steps) ends without validation instead of failing
    stopper = EarlyStopping(monitor="val_psnr", mode="max", patience=args.patience, min_delta=0.01, strict=False)
    devices: Any = args.devices if args.devices == "auto" else int(args.devices)
    trainer = pl.Trainer(
        accelerator=args.accelerator, devices=devices, max_epochs=args.max_epochs, max_steps=args.max_steps,
        max_time=timedelta(seconds=args.max_time) if args.max_time else None,
        callbacks=[checkpoint, stopper], logger=logger, enable_progress_bar=not args.quiet,
        enable_model_summary=False, log_every_n_steps=10, deterministic=False,
        strategy=_strategy(args), precision=args.precision, benchmark=args.accelerator != "cpu",
        limit_val_batches=None if args.limit_val_batches is None else (
            int(args.limit_val_batches) if args.limit_val_batches > 1 else args.limit_val_batches),
    )
    t0 = time.time()
    trainer.fit(module, datamodule=data)
    train_seconds = time.time() - t0
    if not trainer.is_global_zero:  # DDP: rank 0 evaluates and writes the checkpoint
        return {}

    best = read_checkpoint(checkpoint.best_model_path) if checkpoint.best_model_path else None
    if best is not None:
        module.net.load_state_dict(best["state_dict"])
    net = module.net.cpu().eval()
    result: dict[str, Any] = {
        "model": args.model, "filter": flt.key, "params": count_parameters(net),
        "train_seconds": round(train_seconds, 1), "epochs": trainer.current_epoch,
        "best_val_psnr": float(checkpoint.best_model_score) if checkpoint.best_model_score is not None else None,
    }
    if not args.no_test:
        from src.testing.evaluate import evaluate_images, format_table

        rows, mean = evaluate_images(net, flt, data.splits["test"])
        print(format_table(rows, mean))
        result.update({f"test_{k}": v for k, v in mean.items() if k not in ("image", "size")})
    output = Path(args.output or DEFAULT_OUTPUTS.get((args.model, flt.key), f"models/{args.model}-{flt.key}.ckpt"))
    metrics = {k: v for k, v in result.items() if isinstance(v, float) and k.startswith(("test_", "best_"))}
    info = {"data": args.data, "crop": args.crop, "seed": args.seed, "train_seconds": result["train_seconds"],
            "epochs": result["epochs"], "torch": torch.__version__}
    save_model(output, net, args.model, flt.name, flt.params, metrics=metrics, info=info)
    result["checkpoint"] = str(output)
    result["log_dir"] = str(logger.log_dir) if logger and getattr(logger, "log_dir", None) else None
    print(json.dumps(result))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    train(args)
    return 0


if __name__ == "__main__":
    run_cli(main)
