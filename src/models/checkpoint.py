"""Checkpoints: one small format the project writes, read back with ``weights_only=True``.

``load_model`` also reads the Lightning ``.ckpt`` files that training leaves in its run folder.
A checkpoint is data: every field is checked (type, bounds, finite values) and the network's size,
computed from its hyper-parameters on the ``meta`` device, is compared with the stored weights before
anything is allocated. Nothing named in a checkpoint is imported (see ``src.filters.stored_filter``).
"""
from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from src.io.files import atomic_write_bytes
from src.errors import UserError
from src.cli import strict_json
from src.models.networks import build_model, check_model_config

FORMAT = "learn-filters"
VERSION = 1
_ZIP_MAGIC, _PICKLE_MAGIC = b"PK\x03\x04", b"\x80"


def save_model(
    path: str | os.PathLike,
    net: nn.Module,
    model_name: str,
    filter_name: str,
    filter_params: dict[str, Any] | None = None,
    metrics: dict[str, float] | None = None,
    info: dict[str, Any] | None = None,
) -> Path:
    """Write ``net`` with everything needed to rebuild it (atomically: temp file, then rename).

    Refuses (:class:`UserError`) weights or metrics that are NaN or infinite: a diverged run is not saved.
    """
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    metrics = {k: float(v) for k, v in (metrics or {}).items()}
    _check_finite(Path(path), state, metrics, what="not saved")
    blob = {
        "format": FORMAT,
        "version": VERSION,
        "model": model_name,
        "model_kwargs": {k: v for k, v in net.config.items() if k != "out_channels"},
        "out_channels": net.out_channels,
        "filter": filter_name,
        "filter_params": dict(filter_params or {}),
        "metrics": metrics,
        # JSON round trip: only plain types, so the file loads with weights_only=True.
        "info": json.loads(strict_json(info or {}, default=str)),
        "state_dict": state,
    }
    buf = io.BytesIO()
    torch.save(blob, buf)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def _check_finite(path: Path, state: dict[str, torch.Tensor], metrics: dict[str, float], what: str) -> None:
    for k, v in metrics.items():
        if not math.isfinite(v):
            raise UserError(f"{path}: metric {k!r} is {v} (a diverged run?); {what}")
    for k, t in state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise UserError(f"{path}: weight {k!r} holds NaN or infinite values (a diverged run?); {what}")


def _load_blob(path: Path) -> Any:
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint" + (" (it is a folder)" if path.is_dir() else ""))
    with open(path, "rb") as f:
        head = f.read(4)
    if not head.startswith((_ZIP_MAGIC, _PICKLE_MAGIC)):
        kind = "an empty file" if not head else "not a PyTorch file"
        raise UserError(f"{path}: not a readable checkpoint ({kind})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and unsafe-type errors all mean "not ours"
        text = str(exc)
        if "Unsupported global" in text or "weights_only" in text.lower() or "Weights only" in text:
            name = text.split("GLOBAL", 1)[1].split()[0] if "GLOBAL" in text else "a Python object"
            reason = f"it holds {name}, which is code, not weights; refused (weights_only=True)"
        else:
            reason = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        raise UserError(f"{path}: not a readable checkpoint ({reason})") from None


def _field(path: Path, blob: dict, key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in blob:
        raise UserError(f"{path}: field {key!r} is missing")
    value = blob[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise UserError(f"{path}: field {key!r} must be {names}, got {type(value).__name__}")
    if isinstance(value, dict) and not all(isinstance(k, str) for k in value):
        raise UserError(f"{path}: field {key!r} must have text keys")
    return value


def _validate(path: Path, blob: dict) -> dict[str, Any]:
    """Every field present, of its type, in bounds and finite; the weights of the declared network's size."""
    out = {"format": FORMAT, "version": VERSION}
    out["model"] = _field(path, blob, "model", str)
    out["model_kwargs"] = dict(_field(path, blob, "model_kwargs", dict))
    out["out_channels"] = _field(path, blob, "out_channels", int)
    out["filter"] = _field(path, blob, "filter", str)
    out["filter_params"] = dict(_field(path, blob, "filter_params", dict))
    for k, v in out["filter_params"].items():
        if not isinstance(v, (str, int, float, bool, type(None))):
            raise UserError(f"{path}: filter_params[{k!r}] must be a number, text or bool, got {type(v).__name__}")
    metrics = _field(path, blob, "metrics", dict)
    for k, v in metrics.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise UserError(f"{path}: metrics[{k!r}] must be a number, got {type(v).__name__}")
    out["metrics"] = {k: float(v) for k, v in metrics.items()}
    out["info"] = dict(_field(path, blob, "info", dict))
    state = _field(path, blob, "state_dict", dict)
    for k, v in state.items():
        if not isinstance(v, torch.Tensor):
            raise UserError(f"{path}: state_dict[{k!r}] must be a tensor, got {type(v).__name__}")
    out["state_dict"] = state
    try:
        check_model_config(out["model"], out["out_channels"], out["model_kwargs"])
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    _check_shapes(path, out)
    _check_finite(path, state, out["metrics"], what="refused")
    return out


def _check_shapes(path: Path, blob: dict[str, Any]) -> None:
    """Build the declared network on the ``meta`` device (no memory) and compare its tensors with the file's."""
    try:
        with torch.device("meta"):
            shell = build_model(blob["model"], out_channels=blob["out_channels"], **blob["model_kwargs"])
    except (UserError, ValueError) as exc:
        raise UserError(f"{path}: model_kwargs: {exc}") from None
    want = {k: tuple(v.shape) for k, v in shell.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in blob["state_dict"].items()}
    if want == have:
        return
    n_want = sum(math.prod(s) for s in want.values())
    n_have = sum(math.prod(s) for s in have.values())
    missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
    wrong = sorted(k for k in set(want) & set(have) if want[k] != have[k])
    detail = (f"missing {missing[0]!r}" if missing else f"unexpected {extra[0]!r}" if extra
              else f"{wrong[0]!r} is {list(have[wrong[0]])}, expected {list(want[wrong[0]])}")
    raise UserError(f"{path}: weights do not fit a {blob['model']!r} network of these hyper-parameters "
                    f"({n_want:,} values declared, {n_have:,} stored; {detail})")


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a checkpoint into the project's dict form (``model``, ``filter``, ``state_dict``, ...).

    Any missing, mistyped, out-of-bounds or non-finite field raises a one-line :class:`UserError` naming it.
    """
    path = Path(path)
    blob = _load_blob(path)
    if isinstance(blob, dict) and blob.get("format") == FORMAT:
        return _validate(path, blob)
    if isinstance(blob, dict) and isinstance(blob.get("hyper_parameters"), dict) and "model_name" in blob["hyper_parameters"]:
        hp = blob["hyper_parameters"]
        state = _field(path, blob, "state_dict", dict)
        prefix = "net."
        return _validate(path, {
            "model": hp["model_name"], "model_kwargs": hp.get("model_kwargs") or {},
            "out_channels": hp.get("out_channels", 1), "filter": hp.get("filter_name", "sobel"),
            "filter_params": hp.get("filter_params") or {}, "metrics": {}, "info": {"source": "lightning"},
            "state_dict": {k[len(prefix):]: v for k, v in state.items() if isinstance(k, str) and k.startswith(prefix)},
        })
    raise UserError(f"{path}: not a checkpoint written by this project")


def check_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device that exists here, or a one-line error (before any work starts)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise UserError(f"--device {device!r}: unknown device (expected cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {device}: no CUDA GPU is available here (use --device cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {device}: MPS is not available here (use --device cpu)")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"--device {device}: unsupported device type {dev.type!r} (use cpu, cuda or mps)")
    return dev


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Load any checkpoint the project writes as an eval-mode network.

    The returned module maps float ``(B, 3, H, W)`` in [0, 1] to ``(B, C, H, W)``; ``net.meta`` holds
    the model and filter names, filter parameters and the metrics stored at training time.
    """
    device = check_device(device)
    blob = read_checkpoint(path)
    net = build_model(blob["model"], out_channels=blob["out_channels"], **blob["model_kwargs"])
    try:
        net.load_state_dict(blob["state_dict"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise UserError(f"{path}: weights do not fit a {blob['model']!r} network ({first[1].strip() if len(first) > 1 else first[0]})") from None
    net.meta = {k: blob[k] for k in ("model", "filter", "filter_params", "metrics", "info", "out_channels")}
    net.meta["path"] = str(path)
    return net.to(device).eval()


def record_metrics(path: str | os.PathLike, metrics: dict[str, float]) -> None:
    """Merge ``metrics`` into a project checkpoint's stored metrics (atomic rewrite)."""
    read_checkpoint(path)  # validated as any checkpoint
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not (isinstance(blob, dict) and blob.get("format") == FORMAT):
        raise UserError(f"{path}: --record needs a checkpoint in the project's own format (models/*.ckpt)")
    if bad := [k for k, v in metrics.items() if not math.isfinite(v)]:
        raise UserError(f"{path}: metric(s) {', '.join(bad)} are not finite; not recorded")
    blob["metrics"] = {**blob.get("metrics", {}), **{k: float(v) for k, v in metrics.items()}}
    buf = io.BytesIO()
    torch.save(blob, buf)
    atomic_write_bytes(path, buf.getvalue())
