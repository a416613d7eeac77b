"""PSNR against image size: a fully convolutional net trained on 64x64 crops, evaluated up to 4K.

    python -m src.studies.sizes --checkpoint models/sobel.ckpt

Each test photo is resized (area or cubic interpolation) to every size, the reference filter is
computed at that size, and the prediction is compared at native resolution, borders included.
"""
from __future__ import annotations

import argparse
from typing import Sequence

import cv2
import numpy as np

from src.cli import run_cli
from src.dataset import load_split
from src.evaluation.metrics import psnr

SIZES = ((64, 64), (128, 128), (256, 256), (512, 512), (1024, 1024), (1920, 1080), (3840, 2160))


def psnr_by_size(net, flt, images, sizes=SIZES) -> list[dict]:
    """Mean PSNR (and zero-prediction PSNR) over ``images`` resized to each ``(width, height)``."""
    from src.inference.predict import predict  # start-up: torch only when called

    rows = []
    for w, h in sizes:
        scores, zeros = [], []
        for im in images:
            interp = cv2.INTER_AREA if w * h < im.rgb.shape[0] * im.rgb.shape[1] else cv2.INTER_CUBIC
            rgb = cv2.resize(im.rgb, (w, h), interpolation=interp)
            target = flt(rgb)
            scores.append(psnr(predict(net, rgb, tile=1024), target))
            zeros.append(psnr(np.zeros_like(target), target))
        rows.append({"size": f"{w}x{h}", "psnr": float(np.mean(scores)), "zero_psnr": float(np.mean(zeros))})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    from src.evaluation.evaluate import checkpoint_filter  # start-up: torch only when called
    from src.models import load_model  # start-up: torch only when called

    ap = argparse.ArgumentParser(prog="python -m src.studies.sizes", description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="models/sobel.ckpt")
    args = ap.parse_args(argv)
    net = load_model(args.checkpoint)
    flt = checkpoint_filter(net)
    rows = psnr_by_size(net, flt, load_split("skimage", "test"))
    print(f"{args.checkpoint}: mean over the 4 test photos resized to each size")
    print(f"{'size':>10} {'PSNR':>8} {'zero':>7}")
    for r in rows:
        print(f"{r['size']:>10} {r['psnr']:>8.2f} {r['zero_psnr']:>7.2f}")
    return 0


if __name__ == "__main__":
    run_cli(main)
