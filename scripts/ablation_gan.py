"""What does the GAN add? An L1-only U-Net vs Pix2Pix (GAN + L1): same generator, data and time budget.

    python scripts/ablation_gan.py [--seconds 100 | --batches 300] [--crop 64] [--ngf 16] [--accelerator cpu]

Trains both with the one training entry point, evaluates them on the test split at native resolution and
writes ``figures/ablation-gan.csv`` (PSNR, SSIM per model) and ``figures/ablation-gan.png`` (one test image:
input | target | L1 only | Pix2Pix).
"""
from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.dataset import load_split  # noqa: E402
from src.io.files import atomic_write_bytes  # noqa: E402
from src.experiment.train import build_parser, train  # noqa: E402
from src.filters import get_filter  # noqa: E402
from src.models import load_model  # noqa: E402
from src.evaluation.evaluate import evaluate_images  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=100, help="training budget per model")
    ap.add_argument("--batches", type=int, default=None, help="train each for this many batches instead (a noisy shared CPU)")
    ap.add_argument("--crop", type=int, default=64)
    ap.add_argument("--ngf", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--accelerator", default="cpu")
    ap.add_argument("--models", default="models/runs/ablation", help="folder for the two checkpoints (git-ignored)")
    ap.add_argument("--figures", default="figures")
    args = ap.parse_args(argv)

    flt, test = get_filter("sobel"), load_split("skimage", "test")
    results = {}
    for model in ("unet", "pix2pix"):
        ckpt = Path(args.models) / f"{model}.ckpt"
        train(build_parser().parse_args([
            "--model", model, "--crop", str(args.crop), "--model-arg", f"ngf={args.ngf}", "--batch-size",
            str(args.batch_size), "--lr", str(args.lr), *_budget(args, model), "--steps-per-epoch", "50",
            "--accelerator", args.accelerator, "--output", str(ckpt), "--run-dir", str(Path(args.models) / "runs"),
            "--no-test", "--quiet"]))
        rows, mean = evaluate_images(load_model(ckpt), flt, test, keep=True)
        results[model] = (rows, mean, load_model(ckpt).meta["info"])

    figures = Path(args.figures)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["model", "test_psnr", "test_ssim", "train_seconds", "epochs"])
    for model, (_, mean, info) in results.items():
        w.writerow([model, f"{mean['psnr']:.2f}", f"{mean['ssim']:.4f}", info["train_seconds"], info["epochs"]])
        print(f"{model:>8}: test PSNR {mean['psnr']:.2f} dB, SSIM {mean['ssim']:.4f} ({info['train_seconds']} s)")
    atomic_write_bytes(figures / "ablation-gan.csv", buf.getvalue().encode())
    _picture(figures / "ablation-gan.png", results)


def _budget(args, model: str) -> list[str]:
    if args.batches:  # pix2pix makes two optimiser steps (D, G) per batch
        return ["--max-steps", str(args.batches * (2 if model == "pix2pix" else 1))]
    return ["--max-time", str(args.seconds)]


def _picture(path: Path, results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rgb, target, _ = results["unet"][0][0]["_arrays"]
    panels = [(rgb, None, "input"), (target, "gray", "Sobel target")]
    for model, label in (("unet", "U-Net, L1 only"), ("pix2pix", "Pix2Pix, GAN + L1")):
        row = results[model][0][0]
        panels.append((row["_arrays"][2], "gray", f"{label}: {row['psnr']:.1f} dB"))
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.8))
    for ax, (img, cmap, title) in zip(axes, panels):
        ax.imshow(img, cmap=cmap, vmin=0, vmax=1)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=70)
    atomic_write_bytes(path, buf.getvalue())


if __name__ == "__main__":
    main()
