"""Export a checkpoint to ONNX with dynamic height and width.

    python -m src.inference.export --checkpoint models/sobel.ckpt --onnx models/sobel.onnx

The graph maps float32 ``(B, 3, H, W)`` in [0, 1] to ``(B, C, H, W)``; the command checks the
ONNX Runtime output against torch on an odd-size image before it reports success.
"""
from __future__ import annotations

import argparse
import io
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn

from src.cli import run_cli
from src.errors import UserError
from src.io.files import atomic_write_bytes
from src.models import load_model


def export_onnx(net: nn.Module, path: str | os.PathLike, example_size: int = 64) -> Path:
    """Write ``net`` as ONNX (opset 17) with dynamic batch, height and width, atomically.

    Inputs must be larger than the network's padding (e.g. >= 3x3 for the 5x5 compact net); ``predict``
    handles smaller ones in torch.
    """
    why_not = getattr(net, "onnx_unsupported", None)
    if why_not:
        raise UserError(f"{type(net).__name__} does not export to ONNX: {why_not}")
    net = net.eval()
    x = torch.rand(1, 3, example_size, example_size)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about size-dependent Python branches
        torch.onnx.export(
            net, (x,), buf, input_names=["image"], output_names=["filtered"], opset_version=17, dynamo=False,
            dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}, "filtered": {0: "batch", 2: "height", 3: "width"}},
        )
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def onnx_max_difference(net: nn.Module, path: str | os.PathLike, height: int = 97, width: int = 131) -> float:
    """Max |ONNX Runtime - torch| on a random odd-size image."""
    import onnxruntime as ort  # start-up: onnxruntime only when called

    x = torch.rand(1, 3, height, width)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": x.numpy()})[0]
    with torch.no_grad():
        want = net.eval()(x).numpy()
    if got.shape != want.shape:
        raise UserError(f"ONNX output shape {got.shape} differs from torch {want.shape}")
    return float(np.abs(got - want).max())


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m src.inference.export", description="Export a checkpoint to ONNX.")
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--onnx", required=True, help="output .onnx file")
    args = ap.parse_args(argv)
    net = load_model(args.checkpoint)
    path = export_onnx(net, args.onnx)
    diff = onnx_max_difference(net, path)
    print(f"wrote {path} ({path.stat().st_size / 1024:.1f} KiB); ONNX Runtime vs torch on 97x131: max |diff| {diff:.2e}")
    return 0 if diff <= 1e-4 else 1


if __name__ == "__main__":
    run_cli(main)
