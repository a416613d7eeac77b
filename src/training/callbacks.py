"""Lightning callbacks and the checkpoint writer that make a training run land every time.

- :class:`StagePlateau`: early stopping that knows about the finishing stage (a plateau in the Adam
  stage starts the L-BFGS finish, a plateau in the last stage ends the run);
- :class:`FiniteGuard`: stops at the first non-finite loss with one clear line, before anything
  non-finite can be saved;
- :class:`GracefulInterrupt`: Ctrl-C finishes the current step, writes a resumable checkpoint and stops;
- :class:`RunConfig`: stores the run's settings in every checkpoint, so ``--resume`` can refuse a
  checkpoint from another run;
- :class:`ValCurve`: records the validation PSNR after every validation (a study's plateau check);
- :class:`AtomicCheckpointIO`: Lightning checkpoints written to a temp file and renamed, so a kill at
  any moment leaves the previous checkpoint whole.
"""
from __future__ import annotations

import io
import math
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from src.io.files import atomic_write_bytes
from src.errors import UserError


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoints through the project's one writer, :func:`~src.io.files.atomic_write_bytes`:
    a temp file beside the target, renamed over it; one left by a kill is swept by the next write."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        buf = io.BytesIO()
        torch.save(checkpoint, buf)
        atomic_write_bytes(path, buf.getvalue())


class StagePlateau(pl.Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` validations.

    If the module has a stage to begin (``begin_finish()`` returns True), a plateau starts it instead of
    stopping, and the patience starts over. ``curve``: ``(global step, value)`` of every validation, for
    :func:`convergence`. State is saved in checkpoints (resumable).
    """

    def __init__(self, patience: int, min_delta: float = 0.01, monitor: str = "val_psnr"):
        self.patience, self.min_delta, self.monitor = patience, min_delta, monitor
        self.best, self.wait, self.stopped_at = -math.inf, 0, None
        self.curve: list[tuple[int, float]] = []

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        self.curve.append((int(trainer.global_step), value))
        if value > self.best + self.min_delta:
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait < self.patience:
            return
        begin = getattr(module, "begin_finish", None)
        if begin is not None and begin():
            self.wait = 0
            print(f"step {trainer.global_step}: validation plateau at {self.best:.2f} dB, starting the finish")
        else:
            self.stopped_at = trainer.global_step
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "wait": self.wait, "stopped_at": self.stopped_at, "curve": list(self.curve)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.wait, self.stopped_at = state["best"], state["wait"], state.get("stopped_at")
        self.curve = [(int(s), float(v)) for s, v in state.get("curve", [])]


CONVERGED_DB = 0.1  # the last validations' gain below this: converged
LAST_VALIDATIONS = 3


def convergence(curve: list[tuple[int, float]], k: int = LAST_VALIDATIONS,
                threshold: float = CONVERGED_DB) -> dict[str, Any]:
    """Has a run converged? The gain of its last ``k`` validations: their best minus the best before them (dB).
    Below ``threshold``: ``converged`` True; above: still improving when the budget ended; None with fewer than
    ``k + 1`` finite validations (too short to tell). Validations are equally spaced in steps, so the test compares
    equal compute."""
    values = [v for _, v in curve if math.isfinite(v)]
    if len(values) <= k:
        return {"val_gain_last": None, "converged": None}
    gain = max(values[-k:]) - max(values[:-k])
    return {"val_gain_last": round(gain, 4), "converged": gain < threshold}


class ValCurve(pl.Callback):
    """``points``: ``(global step, val_psnr)`` after every validation, sanity check excluded."""

    def __init__(self, monitor: str = "val_psnr"):
        self.monitor, self.points = monitor, []

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if not trainer.sanity_checking and value is not None:
            self.points.append((int(trainer.global_step), float(value)))


class FiniteGuard(pl.Callback):
    """Raise a one-line :class:`UserError` at the first step whose loss is NaN or infinite."""

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and not bool(torch.isfinite(loss).all()):
            raise UserError(f"training diverged at step {trainer.global_step}: the loss is {float(loss)} "
                            f"(try a lower --lr); no checkpoint was written")


class TrainingInterrupted(Exception):
    """Raised after Ctrl-C once a resumable checkpoint is on disk."""


class GracefulInterrupt(pl.Callback):
    """Ctrl-C: finish the step in flight, save a resumable checkpoint to ``path``, stop the run.

    A second Ctrl-C while that happens interrupts at once (the previous checkpoint stays whole).
    """

    def __init__(self, path: str | os.PathLike):
        self.path, self.requested, self._previous = Path(path), False, None

    def _handler(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def on_fit_start(self, trainer, module) -> None:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)

    def _restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if self.requested:
            trainer.save_checkpoint(self.path)
            self._restore()
            raise TrainingInterrupted(f"interrupted at step {trainer.global_step}; saved {self.path}")

    def on_fit_end(self, trainer, module) -> None:
        self._restore()

    def on_exception(self, trainer, module, exception) -> None:
        self._restore()


class RunConfig(pl.Callback):
    """Writes ``config`` (the settings that define a run) into every checkpoint as ``run_config``."""

    def __init__(self, config: dict[str, Any]):
        self.config = config

    def on_save_checkpoint(self, trainer, module, checkpoint: dict) -> None:
        checkpoint["run_config"] = dict(self.config)


class Throughput(pl.Callback):
    """Images per second over ``measure`` training batches, after ``warmup`` batches (compilation, autotuning).

    Per process: under DDP each rank sees its own share of the global batch.
    """

    def __init__(self, warmup: int, measure: int):
        self.warmup, self.measure, self.images, self.t0, self.value = warmup, measure, 0, None, None

    def _sync(self, pl_module: pl.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.warmup:
            self._sync(pl_module)
            self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.t0 is not None and batch_idx >= self.warmup:
            self.images += batch["input"].shape[0]
        if batch_idx == self.warmup + self.measure - 1:
            self._sync(pl_module)
            self.value = self.images / (time.perf_counter() - self.t0)
