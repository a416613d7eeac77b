"""The one training entry point: any model, any filter, any data, by name.

    python -m src.experiment.train --model compact --filter sobel --data skimage [--max-steps 1600]

Budgets are optimiser steps (``--max-steps``; per-model defaults in ``MODEL_DEFAULTS``), so the same
command and seed give bit-identical weights on a busy or an idle CPU; ``--max-time`` is only a safety
cap, and says so when it cuts a run short. ``--resume`` continues an interrupted run (Ctrl-C or a kill)
from its last checkpoint to the same final weights.
"""
from __future__ import annotations

import argparse
import ast
import math
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Sequence

from src.errors import UserError, run_cli, strict_json

DEFAULT_OUTPUTS = {("compact", "sobel"): "models/sobel.ckpt", ("autoencoder", "sobel"): "models/autoencoder.ckpt"}
DEFAULT_OUTPUTS.update({("pix2pix", "sobel"): "models/pix2pix.ckpt", ("unet", "sobel"): "models/unet.ckpt"})

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
# Settings that define a run: --resume refuses a checkpoint whose values differ.
RUN_KEYS = ("model", "model_kwargs", "filter", "filter_params", "data", "crop", "batch_size", "steps_per_epoch",
            "max_steps", "loss", "lr", "lambda_l1", "gan_weight", "finish", "finish_after", "seed", "patience", "lr_patience")
# Run keys added after runs were saved without them, with the value those runs used (so they still resume).
ADDED_RUN_KEYS: dict[str, Any] = {"gan_weight": 1.0}


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
    ap.add_argument("--model", default="compact", help="network: compact, autoencoder, can, unet, pix2pix (see src.models.MODELS)")
    ap.add_argument("--model-arg", action="append", metavar="KEY=VALUE", help="network option, e.g. kernel_size=7")
    ap.add_argument("--filter", default="sobel", help="target filter (see src.filters.available())")
    ap.add_argument("--filter-param", action="append", metavar="KEY=VALUE", help="filter parameter, e.g. ksize=5")
    ap.add_argument("--pairs", nargs=2, metavar=("IN_DIR", "OUT_DIR"), help="learn a filter from examples: "
                    "inputs and their outputs, matched by file name (replaces --filter and --data)")
    ap.add_argument("--data", default="skimage",
                    help="'skimage' (embedded, no download), mini-coco|cifar100|oxford-pets[:64|128|native], or a folder")
    ap.add_argument("--crop", type=int, default=64, help="training crop size in pixels")
    ap.add_argument("--batch-size", type=int, default=None, help="crops per step (default per model: MODEL_DEFAULTS)")
    ap.add_argument("--steps-per-epoch", type=int, default=None,
                    help="training batches between validations and checkpoints (default per model)")
    ap.add_argument("--max-steps", type=int, default=None,
                    help="the budget: optimiser steps (default per model; pix2pix makes 2 per batch, G and D)")
    ap.add_argument("--max-time", type=float, default=None,
                    help="safety cap in seconds; a run it cuts short says so (results then depend on the machine)")
    ap.add_argument("--finish", default=None, choices=["lbfgs", "none"],
                    help="second stage: L-BFGS least-squares finish on fixed crops (default: lbfgs for compact)")
    ap.add_argument("--finish-after", type=int, default=None,
                    help="Adam steps before the finish starts (earlier on an Adam plateau; default per model)")
    ap.add_argument("--limit-val-batches", type=float, default=None,
                    help="validation images per epoch: a fraction (<= 1.0) or a count (> 1)")
    ap.add_argument("--patience", type=int, default=None, help="early stopping: validations without val PSNR gain")
    ap.add_argument("--lr-patience", type=int, default=2,
                    help="validations without val PSNR gain before the LR is cut by 0.3 (Adam stage)")
    ap.add_argument("--loss", default="l1", choices=["l1", "mse"])
    ap.add_argument("--lr", type=float, default=None, help="learning rate (default per model: MODEL_DEFAULTS)")
    ap.add_argument("--lambda-l1", type=float, default=100.0, help="pix2pix: weight of L1 against the GAN loss")
    ap.add_argument("--gan-weight", type=float, default=1.0,
                    help="pix2pix: weight of the adversarial term (0: the same training on L1 alone, the GAN ablation)")
    ap.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp (with --devices N)")
    ap.add_argument("--precision", default=None, help="Lightning precision, e.g. bf16-mixed (GPU)")
    ap.add_argument("--channels-last", action="store_true", help="pix2pix: NHWC memory format (GPU speed)")
    ap.add_argument("--compile", action="store_true", help="pix2pix: torch.compile the networks")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch/OpenCV threads (default: the model's cap, at most the cores this process may use)")
    ap.add_argument("--accelerator", default="cpu", help="cpu, gpu, auto")
    ap.add_argument("--devices", default="1", help="number of devices, or 'auto'")
    ap.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    ap.add_argument("--logger", default="csv", choices=["csv", "tensorboard", "wandb", "none"])
    ap.add_argument("--output", default=None, help="checkpoint to write (default models/<model>-<filter>.ckpt)")
    ap.add_argument("--run-dir", default="models/runs",
                    help="folder for logs and the run's resumable checkpoints (<run-dir>/<output name>/checkpoints)")
    ap.add_argument("--resume", action="store_true",
                    help="continue the interrupted run of this command from <run-dir>/<output name>/checkpoints/last.ckpt")
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


def resolve(args: argparse.Namespace) -> dict[str, Any]:
    """The run's settings: the command line over the model's defaults (``MODEL_DEFAULTS``)."""
    if args.model not in MODEL_DEFAULTS:
        from src.models.networks import MODELS

        raise UserError(f"unknown model {args.model!r}; available: {', '.join(sorted(MODELS))}")
    d = MODEL_DEFAULTS[args.model]
    filter_name, filter_params = args.filter, parse_params(args.filter_param, "--filter-param")
    if args.pairs:  # a black-box filter known from examples (src.dataset.pairs); checked before training
        filter_name, filter_params = "pairs", {"in_dir": args.pairs[0], "out_dir": args.pairs[1]}
    cfg = {
        "model": args.model, "model_kwargs": parse_params(args.model_arg, "--model-arg"),
        "filter": filter_name, "filter_params": filter_params, "data": args.data if not args.pairs else None,
        "crop": args.crop, "loss": args.loss, "lambda_l1": args.lambda_l1, "gan_weight": args.gan_weight, "seed": args.seed,
        "lr_patience": args.lr_patience,
    }
    for key in ("lr", "max_steps", "steps_per_epoch", "batch_size", "finish", "patience"):
        value = getattr(args, key)
        cfg[key] = d[key] if value is None else value
    cfg["finish_after"] = args.finish_after if args.finish_after is not None else (
        d.get("finish_after") if cfg["finish"] != "none" else None)
    for key in ("max_steps", "steps_per_epoch", "batch_size", "crop"):
        if cfg[key] < 1:
            raise UserError(f"--{key.replace('_', '-')} must be at least 1, got {cfg[key]}")
    if args.model in ("pix2pix", "unet"):  # U-Net depth follows the crop: 128 -> 7, 256 -> 8
        from src.models.pix2pix import unet_depth

        cfg["model_kwargs"].setdefault("depth", unet_depth(args.crop))
    return cfg


def default_threads(model: str) -> int:
    from src.threads import available_cores

    return min(available_cores(), MODEL_DEFAULTS.get(model, {}).get("threads", available_cores()))


def resume_state(last: Path, cfg: dict[str, Any]) -> None:
    """Refuse, in one line, a missing, unreadable or foreign checkpoint before anything is written."""
    import torch

    if not last.is_file():
        raise UserError(f"--resume: no checkpoint to resume from at {last}")
    try:
        blob = torch.load(last, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, pickle payload, not a checkpoint at all
        reason = str(exc).strip().splitlines()[0][:100] if str(exc).strip() else type(exc).__name__
        raise UserError(f"--resume: {last} is corrupt or not a checkpoint ({reason}); delete it to start over") from None
    saved = blob.get("run_config") if isinstance(blob, dict) else None
    if not isinstance(saved, dict):
        raise UserError(f"--resume: {last} has no run settings (not written by this training command)")
    saved = ADDED_RUN_KEYS | saved
    diff = [f"{k} {saved.get(k)!r} there, {cfg.get(k)!r} here" for k in RUN_KEYS if saved.get(k) != cfg.get(k)]
    if diff:
        raise UserError(f"--resume: {last} is from a different run: " + "; ".join(diff))


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Train to the step budget, keep the best validation checkpoint, export it, evaluate on the test split."""
    cfg = resolve(args)
    import torch

    from src.dataset.images import check_writable
    from src.filters import get_filter
    from src.threads import set_threads

    flt = get_filter(cfg["filter"], **cfg["filter_params"])
    output = Path(args.output or DEFAULT_OUTPUTS.get((args.model, flt.key), f"models/{args.model}-{flt.key}.ckpt"))
    check_writable(output.parent, files=(output.name,), what="--output")
    ckpt_dir = Path(args.run_dir) / output.stem / "checkpoints"
    check_writable(ckpt_dir, files=("last.ckpt",), what="--run-dir")
    if args.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise UserError(f"--accelerator {args.accelerator}: no CUDA GPU is visible to torch here (use --accelerator cpu)")
    last = ckpt_dir / "last.ckpt"
    if args.resume:
        resume_state(last, cfg)
    import cv2

    previous_threads = torch.get_num_threads(), cv2.getNumThreads()
    threads = set_threads(args.threads or default_threads(args.model))
    try:
        return _train(args, cfg, flt, output, ckpt_dir, threads)
    finally:  # a library call: leave the caller's thread pools as they were
        torch.set_num_threads(previous_threads[0])
        cv2.setNumThreads(previous_threads[1])


def _train(args: argparse.Namespace, cfg: dict[str, Any], flt, output: Path, ckpt_dir: Path, threads: int) -> dict[str, Any]:
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.callbacks import ModelCheckpoint

    from src.dataset import FilterDataModule
    from src.models import count_parameters, save_model
    from src.models.callbacks import AtomicCheckpointIO, FiniteGuard, GracefulInterrupt, RunConfig, StagePlateau
    from src.models.checkpoint import read_checkpoint
    from src.models.lit import FilterRegressor

    pl.seed_everything(cfg["seed"], workers=True, verbose=False)
    run_dir, last = Path(args.run_dir), ckpt_dir / "last.ckpt"

    if args.model == "pix2pix":
        from src.models.lit_pix2pix import Pix2PixModule

        module = Pix2PixModule(cfg["model_kwargs"], cfg["filter"], cfg["filter_params"], lr=cfg["lr"],
                               lambda_l1=cfg["lambda_l1"], gan_weight=cfg["gan_weight"], total_steps=cfg["max_steps"] // 2,  # G + D steps per batch
                               channels_last=args.channels_last, compile=args.compile, seed=cfg["seed"])
    else:
        module = FilterRegressor(args.model, cfg["model_kwargs"], cfg["filter"], cfg["filter_params"], loss=cfg["loss"],
                                 lr=cfg["lr"], lr_patience=cfg["lr_patience"], finish=cfg["finish"],
                                 finish_after=cfg["finish_after"], seed=cfg["seed"])
    kw = dict(crop=cfg["crop"], batch_size=cfg["batch_size"], steps_per_epoch=cfg["steps_per_epoch"],
              num_workers=args.num_workers, seed=cfg["seed"])
    if args.pairs:
        from src.dataset.pairs import PairsDataModule

        data = PairsDataModule(flt, **kw)
    else:
        data = FilterDataModule(flt, cfg["data"], pin_memory=args.accelerator not in ("cpu",), **kw)
    data.setup("fit")  # fail on bad --data before the trainer starts

    if not args.resume:  # a new run: this output's previous run state is replaced (scratch, not a result)
        stale = [f for f in ckpt_dir.glob("*.ckpt")] if ckpt_dir.is_dir() else []
        if stale:
            print(f"note: starting over; the previous run state in {ckpt_dir} is replaced (--resume continues it)")
        for f in stale:
            f.unlink()
    logger = _logger(args.logger, run_dir, output.stem)
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val_psnr", mode="max", save_top_k=1,
                                 save_last=True, enable_version_counter=False)
    plateau = StagePlateau(patience=cfg["patience"])
    interrupt = GracefulInterrupt(last)
    devices: Any = args.devices if args.devices == "auto" else int(args.devices)
    trainer = pl.Trainer(
        accelerator=args.accelerator, devices=devices, max_epochs=-1, max_steps=cfg["max_steps"],
        max_time=timedelta(seconds=args.max_time) if args.max_time else None,
        callbacks=[checkpoint, plateau, FiniteGuard(), interrupt, RunConfig({k: cfg[k] for k in RUN_KEYS})],
        logger=logger, enable_progress_bar=not args.quiet, enable_model_summary=False, log_every_n_steps=10,
        num_sanity_val_steps=0, deterministic=True if args.accelerator == "cpu" else "warn",
        plugins=[AtomicCheckpointIO()], strategy=_strategy(args), precision=args.precision,
        benchmark=args.accelerator != "cpu",
        limit_val_batches=None if args.limit_val_batches is None else (
            int(args.limit_val_batches) if args.limit_val_batches > 1 else args.limit_val_batches),
    )
    t0 = time.time()
    trainer.fit(module, datamodule=data, ckpt_path=str(last) if args.resume else None, weights_only=True)
    train_seconds = time.time() - t0
    if not trainer.is_global_zero:  # DDP: rank 0 evaluates and writes the checkpoint
        return {}

    steps = trainer.global_step
    if steps >= cfg["max_steps"]:
        stopped_by = "step budget"
    elif plateau.stopped_at is not None:
        stopped_by = "validation plateau"
    elif args.max_time and train_seconds >= args.max_time * 0.99:
        stopped_by = "time cap"
        print(f"stopped by the time cap ({args.max_time:g} s) after {steps} of {cfg['max_steps']} steps: "
              "this result depends on the machine's speed and load")
    else:
        stopped_by = "end of training"
    best = read_checkpoint(checkpoint.best_model_path) if checkpoint.best_model_path else None
    if best is not None:
        module.net.load_state_dict(best["state_dict"])
    net = module.net.float().cpu().eval()
    result: dict[str, Any] = {
        "model": args.model, "filter": flt.key, "params": count_parameters(net), "steps": steps,
        "max_steps": cfg["max_steps"], "stopped_by": stopped_by, "threads": threads,
        "train_seconds": round(train_seconds, 1), "epochs": trainer.current_epoch,
        "finish_start": getattr(module, "finish_start", None),
        "best_val_psnr": float(checkpoint.best_model_score) if checkpoint.best_model_score is not None else None,
    }
    if not args.no_test:
        from src.testing.evaluate import evaluate_images, format_table

        rows, mean = evaluate_images(net, flt, data.splits["test"])
        print(format_table(rows, mean))
        result.update({f"test_{k}": v for k, v in mean.items() if k not in ("image", "size")})
    metrics = {k: v for k, v in result.items()
               if isinstance(v, float) and math.isfinite(v) and k.startswith(("test_", "best_"))}
    info = {"data": cfg["data"], "crop": cfg["crop"], "seed": cfg["seed"], "train_seconds": result["train_seconds"],
            "epochs": result["epochs"], "steps": steps, "max_steps": cfg["max_steps"], "stopped_by": stopped_by,
            "finish": cfg["finish"], "finish_start": result["finish_start"], "threads": threads,
            "torch": torch.__version__}
    save_model(output, net, args.model, flt.name, flt.params, metrics=metrics, info=info)
    result["checkpoint"] = str(output)
    result["log_dir"] = str(logger.log_dir) if logger and getattr(logger, "log_dir", None) else None
    print(strict_json(result))
    psnr = result.get("test_psnr")
    print(f"result: {output} | test PSNR {psnr:.2f} dB" if psnr is not None else f"result: {output}", end="")
    if result.get("test_ssim") is not None:
        print(f", SSIM {result['test_ssim']:.5f}", end="")
    print(f" | {steps} steps ({stopped_by}) in {train_seconds:.0f} s, {threads} thread(s)")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    from src.models.callbacks import TrainingInterrupted

    import logging

    args = build_parser().parse_args(argv)
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)  # no "GPU available: False" banners on the CLI
    try:
        train(args)
    except TrainingInterrupted as exc:
        print(f"{exc}; continue with the same command and --resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    run_cli(main)
