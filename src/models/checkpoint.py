"""Checkpoints: one small format the project writes, read back with ``weights_only=True``.

``load_model`` also reads the Lightning ``.ckpt`` files that training leaves in its run folder.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from src.dataset.images import atomic_write_bytes
from src.errors import UserError
from src.models.networks import MODELS, build_model

FORMAT = "learn-filters"
VERSION = 1


def save_model(
    path: str | os.PathLike,
    net: nn.Module,
    model_name: str,
    filter_name: str,
    filter_params: dict[str, Any] | None = None,
    metrics: dict[str, float] | None = None,
    info: dict[str, Any] | None = None,
) -> Path:
    """Write ``net`` with everything needed to rebuild it (atomically: temp file, then rename)."""
    blob = {
        "format": FORMAT,
        "version": VERSION,
        "model": model_name,
        "model_kwargs": {k: v for k, v in net.config.items() if k != "out_channels"},
        "out_channels": net.out_channels,
        "filter": filter_name,
        "filter_params": dict(filter_params or {}),
        "metrics": {k: float(v) for k, v in (metrics or {}).items()},
        # JSON round trip: only plain types, so the file loads with weights_only=True.
        "info": json.loads(json.dumps(info or {}, default=str)),
        "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
    }
    buf = io.BytesIO()
    torch.save(blob, buf)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint into the project's dict form (``model``, ``filter``, ``state_dict``, ...)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and unsafe-type errors all mean "not ours"
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: not a readable checkpoint ({reason})") from None
    if isinstance(blob, dict) and blob.get("format") == FORMAT:
        return blob
    if isinstance(blob, dict) and "state_dict" in blob and "model_name" in blob.get("hyper_parameters", {}):
        hp = blob["hyper_parameters"]
        prefix = "net."
        state = {k[len(prefix):]: v for k, v in blob["state_dict"].items() if k.startswith(prefix)}
        return {
            "format": FORMAT, "version": VERSION, "model": hp["model_name"],
            "model_kwargs": dict(hp.get("model_kwargs") or {}), "out_channels": hp.get("out_channels", 1),
            "filter": hp.get("filter_name", "sobel"), "filter_params": dict(hp.get("filter_params") or {}),
            "metrics": {}, "info": {"source": "lightning"}, "state_dict": state,
        }
    raise UserError(f"{path}: not a checkpoint written by this project")


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Load any checkpoint the project writes as an eval-mode network.

    The returned module maps float ``(B, 3, H, W)`` in [0, 1] to ``(B, C, H, W)``; ``net.meta`` holds
    the model and filter names, filter parameters and the metrics stored at training time.
    """
    blob = read_checkpoint(path)
    if blob["model"] not in MODELS:
        raise UserError(f"{path}: model kind {blob['model']!r} is not one of {sorted(MODELS)}")
    net = build_model(blob["model"], out_channels=blob["out_channels"], **blob["model_kwargs"])
    try:
        net.load_state_dict(blob["state_dict"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise UserError(f"{path}: weights do not fit a {blob['model']!r} network ({first[1].strip() if len(first) > 1 else first[0]})") from None
    net.meta = {k: blob[k] for k in ("model", "filter", "filter_params", "metrics", "info", "out_channels")}
    net.meta["path"] = str(path)
    return net.to(device).eval()
