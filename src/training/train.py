"""The one training entry point: any model, any filter, any data, by name.

    python -m src.training.train --model compact --filter sobel --data skimage [--max-steps 1600]

Code calls :func:`train` with a :class:`~src.training.config.TrainConfig`; only :func:`main` parses argv.
Budgets are optimiser steps (``--max-steps``; per-model defaults in ``MODEL_DEFAULTS``), so the same
command and seed give bit-identical weights on a busy or an idle CPU; ``--max-time`` is only a safety
cap, and says so when it cuts a run short. ``--resume`` continues an interrupted run (Ctrl-C or a kill)
from its last checkpoint to the same final weights.

A run is four build steps: :func:`build_module` (the LightningModule), :func:`build_data` (the data
module), :func:`build_trainer` (Lightning, callbacks, checkpoints) and :func:`export` (best weights to the
project's checkpoint format, evaluated on the test split). Lightning and torch are imported inside them,
so ``--help`` and a bad option answer at once.
"""
from __future__ import annotations

import gc
import logging
import math
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Sequence

import cv2

from src.cli import run_cli, strict_json
from src.dataset import FilterDataModule
from src.errors import UserError
from src.io.files import check_writable
from src.threads import set_threads
from src.training.config import (  # noqa: F401 (build_parser, config_from_args, MODEL_DEFAULTS: re-exported)
    ADDED_RUN_KEYS,
    DEFAULT_OUTPUTS,
    MODEL_DEFAULTS,
    RUN_KEYS,
    TrainConfig,
    build_parser,
    config_from_args,
)


def _logger(kind: str, run_dir: Path, name: str):
    import pytorch_lightning.loggers as L  # start-up: Lightning only when called

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


def resume_state(last: Path, settings: dict[str, Any]) -> None:
    """Refuse, in one line, a missing, unreadable or foreign checkpoint before anything is written."""
    import torch  # start-up: torch only when called

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
    diff = [f"{k} {saved.get(k)!r} there, {settings.get(k)!r} here" for k in RUN_KEYS if saved.get(k) != settings.get(k)]
    if diff:
        raise UserError(f"--resume: {last} is from a different run: " + "; ".join(diff))


def train(config: TrainConfig, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Train to the step budget, keep the best validation checkpoint, export it, evaluate on the test split.

    ``callbacks``: extra Lightning callbacks (a caller watching the run, e.g. :mod:`src.training.teach`).

    Returns the run's summary (the ``result`` JSON the CLI prints): steps, what stopped it, test metrics,
    the checkpoint path and the log folder.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"train() takes a TrainConfig, got {type(config).__name__}")
    cfg = config.resolved()
    import torch  # start-up: torch only when called

    from src.filters import get_filter  # start-up: torch only when called

    flt = get_filter(cfg.filter, **cfg.filter_params)
    output = Path(cfg.output or DEFAULT_OUTPUTS.get((cfg.model, flt.key), f"models/{cfg.model}-{flt.key}.ckpt"))
    check_writable(output.parent, files=(output.name,), what="--output")
    ckpt_dir = Path(cfg.run_dir) / output.stem / "checkpoints"
    check_writable(ckpt_dir, files=("last.ckpt",), what="--run-dir")
    if cfg.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise UserError(f"--accelerator {cfg.accelerator}: no CUDA GPU is visible to torch here (use --accelerator cpu)")
    if cfg.resume:
        resume_state(ckpt_dir / "last.ckpt", cfg.run_settings())
    previous_threads = torch.get_num_threads(), cv2.getNumThreads()
    threads = set_threads(cfg.threads or cfg.default_threads)
    try:
        return _train(cfg, flt, output, ckpt_dir, threads, callbacks)
    finally:  # a library call: leave the caller's thread pools as they were
        torch.set_num_threads(previous_threads[0])
        cv2.setNumThreads(previous_threads[1])
        # Lightning's trainer, module and data module refer to each other: a cycle that only a full collection
        # frees, which a process may not run for many allocations. A server that trains per request (the demo's
        # /teach) held each run's data and tensors that way: +105 MB a job until collected (src.demo.soak).
        gc.collect()


def build_module(cfg: TrainConfig):
    """The LightningModule: :class:`~src.models.lit.FilterRegressor`, or Pix2Pix's GAN module."""
    if cfg.model == "pix2pix":
        from src.models.lit_pix2pix import Pix2PixModule  # start-up: Lightning only when called

        return Pix2PixModule(cfg.model_kwargs, cfg.filter, cfg.filter_params, lr=cfg.lr, lambda_l1=cfg.lambda_l1,
                             gan_weight=cfg.gan_weight,
                             total_steps=cfg.max_steps // 2,  # G + D steps per batch
                             channels_last=cfg.channels_last, compile=cfg.compile, seed=cfg.seed)
    from src.models.lit import FilterRegressor  # start-up: Lightning only when called

    return FilterRegressor(cfg.model, cfg.model_kwargs, cfg.filter, cfg.filter_params, loss=cfg.loss, lr=cfg.lr,
                           lr_patience=cfg.lr_patience, finish=cfg.finish, finish_after=cfg.finish_after, seed=cfg.seed)


def build_data(cfg: TrainConfig, flt):
    """The data module, set up for fitting (a bad ``--data`` fails here, before the trainer starts)."""
    kw = dict(crop=cfg.crop, batch_size=cfg.batch_size, steps_per_epoch=cfg.steps_per_epoch,
              num_workers=cfg.num_workers, seed=cfg.seed)
    if cfg.pairs:
        from src.dataset.pairs import PairsDataModule  # start-up: Lightning only when called

        data = PairsDataModule(flt, **kw)
    else:

        data = FilterDataModule(flt, cfg.data, pin_memory=cfg.accelerator not in ("cpu",), cache_mb=cfg.cache_mb, **kw)
    data.setup("fit")
    return data


def build_trainer(cfg: TrainConfig, ckpt_dir: Path, log_name: str, callbacks: Sequence[Any] = ()):
    """Lightning's trainer with the project's callbacks; returns ``(trainer, checkpoint, plateau, logger)``."""
    import pytorch_lightning as pl  # start-up: Lightning only when called
    from pytorch_lightning.callbacks import ModelCheckpoint  # start-up: Lightning only when called

    from src.training.callbacks import (  # start-up: Lightning only when called
        AtomicCheckpointIO,
        FiniteGuard,
        GracefulInterrupt,
        RunConfig,
        StagePlateau,
    )

    logger = _logger(cfg.logger, Path(cfg.run_dir), log_name)
    checkpoint = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val_psnr", mode="max", save_top_k=1,
                                 save_last=True, enable_version_counter=False)
    plateau = StagePlateau(patience=cfg.patience)
    # Pix2Pix's two optimisers each leave the other network without gradients: DDP must allow that.
    strategy = "ddp_find_unused_parameters_true" if cfg.strategy == "ddp" and cfg.model == "pix2pix" else cfg.strategy
    limit_val = cfg.limit_val_batches
    trainer = pl.Trainer(
        accelerator=cfg.accelerator, devices=cfg.devices, num_nodes=cfg.num_nodes, max_epochs=-1, max_steps=cfg.max_steps,
        max_time=timedelta(seconds=cfg.max_time) if cfg.max_time else None,
        callbacks=[checkpoint, plateau, FiniteGuard(), GracefulInterrupt(ckpt_dir / "last.ckpt"),
                   RunConfig(cfg.run_settings()), *callbacks],
        logger=logger, enable_progress_bar=not cfg.quiet, enable_model_summary=False, log_every_n_steps=10,
        num_sanity_val_steps=0, deterministic=True if cfg.accelerator == "cpu" else "warn",
        plugins=[AtomicCheckpointIO()], strategy=strategy, precision=cfg.precision,
        benchmark=cfg.accelerator != "cpu",
        limit_val_batches=None if limit_val is None else (int(limit_val) if limit_val > 1 else limit_val),
    )
    return trainer, checkpoint, plateau, logger


def _train(cfg: TrainConfig, flt, output: Path, ckpt_dir: Path, threads: int, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    import pytorch_lightning as pl  # start-up: Lightning only when called

    from src.training.callbacks import convergence  # start-up: Lightning only when called

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    module = build_module(cfg)
    data = build_data(cfg, flt)
    if not cfg.resume:  # a new run: this output's previous run state is replaced (scratch, not a result)
        stale = [f for f in ckpt_dir.glob("*.ckpt")] if ckpt_dir.is_dir() else []
        if stale:
            print(f"note: starting over; the previous run state in {ckpt_dir} is replaced (--resume continues it)")
        for f in stale:
            f.unlink()
    trainer, checkpoint, plateau, logger = build_trainer(cfg, ckpt_dir, output.stem, callbacks)
    t0 = time.time()
    last = ckpt_dir / "last.ckpt"
    trainer.fit(module, datamodule=data, ckpt_path=str(last) if cfg.resume else None, weights_only=True)
    train_seconds = time.time() - t0
    skips = getattr(data.splits.get("train"), "skips", None)
    if skips is not None and skips.total:
        print(f"note: {skips.total} image file(s) could not be read and were skipped (see the warnings above)")
    if not trainer.is_global_zero:  # DDP: rank 0 evaluates and writes the checkpoint
        return {}

    steps = trainer.global_step
    if steps >= cfg.max_steps:
        stopped_by = "step budget"
    elif plateau.stopped_at is not None:
        stopped_by = "validation plateau"
    elif cfg.max_time and train_seconds >= cfg.max_time * 0.99:
        stopped_by = "time cap"
        print(f"stopped by the time cap ({cfg.max_time:g} s) after {steps} of {cfg.max_steps} steps: "
              "this result depends on the machine's speed and load")
    else:
        stopped_by = "end of training"
    result: dict[str, Any] = {
        "model": cfg.model, "filter": flt.key, "steps": steps, "max_steps": cfg.max_steps, "stopped_by": stopped_by,
        "threads": threads, "train_seconds": round(train_seconds, 1), "epochs": trainer.current_epoch,
        "finish_start": getattr(module, "finish_start", None),
        "best_val_psnr": float(checkpoint.best_model_score) if checkpoint.best_model_score is not None else None,
        **convergence(plateau.curve),
    }
    return export(cfg, module, checkpoint.best_model_path, data, flt, output, result, logger)


def export(cfg: TrainConfig, module, best_path: str, data, flt, output: Path, result: dict[str, Any], logger) -> dict[str, Any]:
    """The best validation weights to ``output`` (the project's checkpoint format), evaluated on the test split."""
    import torch  # start-up: torch only when called

    from src.models import count_parameters, save_model  # start-up: torch only when called
    from src.models.checkpoint import read_checkpoint  # start-up: torch only when called

    best = read_checkpoint(best_path) if best_path else None
    if best is not None:
        module.net.load_state_dict(best["state_dict"])
    net = module.net.float().cpu().eval()
    result = {"model": result["model"], "filter": result["filter"], "params": count_parameters(net),
              **{k: v for k, v in result.items() if k not in ("model", "filter")}}
    if cfg.test:
        from src.evaluation.evaluate import evaluate_images, failed, format_table  # start-up: torch only when called

        rows, mean = evaluate_images(net, flt, data.splits["test"])
        print(format_table(rows, mean))
        result.update({f"test_{k}": v for k, v in mean.items() if k not in ("image", "size")})
        result["failed"] = failed(mean["psnr"], mean["trivial_psnr"])
    metrics = {k: v for k, v in result.items()
               if isinstance(v, float) and math.isfinite(v) and k.startswith(("test_", "best_"))}
    info = {"data": cfg.data, "crop": cfg.crop, "seed": cfg.seed, "train_seconds": result["train_seconds"],
            "epochs": result["epochs"], "steps": result["steps"], "max_steps": cfg.max_steps,
            "stopped_by": result["stopped_by"], "finish": cfg.finish, "finish_start": result["finish_start"],
            "threads": result["threads"], "torch": torch.__version__, "converged": result["converged"],
            "val_gain_last": result["val_gain_last"], "failed": result.get("failed")}
    save_model(output, net, cfg.model, flt.name, flt.params, metrics=metrics, info=info)
    result["checkpoint"] = str(output)
    result["log_dir"] = str(logger.log_dir) if logger and getattr(logger, "log_dir", None) else None
    print(strict_json(result))
    psnr = result.get("test_psnr")
    print(f"result: {output} | test PSNR {psnr:.2f} dB" if psnr is not None else f"result: {output}", end="")
    if result.get("test_ssim") is not None:
        print(f", SSIM {result['test_ssim']:.5f}", end="")
    if result.get("test_trivial_psnr") is not None:
        print(f" (trivial answer {result['test_trivial_psnr']:.2f} dB)", end="")
    print(f" | {result['steps']} steps ({result['stopped_by']}) in {result['train_seconds']:.0f} s, "
          f"{result['threads']} thread(s)")
    print(run_verdict(result))
    return result


def run_verdict(result: dict[str, Any]) -> str:
    """One line on how the run ended: failed (no better than the trivial answer), converged or still improving."""
    from src.evaluation.evaluate import FAILED_DB  # start-up: torch only when called
    from src.training.callbacks import CONVERGED_DB, LAST_VALIDATIONS  # start-up: Lightning only when called

    if result.get("failed"):
        return (f"FAILED: test PSNR within {FAILED_DB} dB of the trivial answer "
                f"({result['test_trivial_psnr']:.2f} dB): the model has not learnt the filter")
    gain, last = result.get("val_gain_last"), f"the last {LAST_VALIDATIONS} validations"
    if result.get("converged") is None:
        return f"convergence: not known (fewer than {LAST_VALIDATIONS + 1} validations)"
    if result["converged"]:
        return f"converged: {last} gained {gain:+.3f} dB of val PSNR (< {CONVERGED_DB} dB)"
    return f"not converged: {last} gained {gain:+.3f} dB of val PSNR (>= {CONVERGED_DB} dB); a larger budget may help"


def main(argv: Sequence[str] | None = None) -> int:
    from src.training.callbacks import TrainingInterrupted  # start-up: Lightning only when called

    args = build_parser().parse_args(argv)
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)  # no "GPU available: False" banners on the CLI
    try:
        train(config_from_args(args))
    except TrainingInterrupted as exc:
        print(f"{exc}; continue with the same command and --resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    run_cli(main)
