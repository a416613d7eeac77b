"""Evaluate a checkpoint against its reference filter at native resolution.

    python -m src.evaluation.evaluate --checkpoint models/sobel.ckpt [--data DIR]

Prints per-image and mean PSNR, SSIM, MAE, the PSNR of predicting all zeros, and the PSNR on the
4-pixel border ring vs the interior; writes a CSV and a grid figure (input | target | prediction |
|error|) into ``figures/``.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch.nn as nn

from src.cli import run_cli
from src.dataset.sources import folder_images, load_split
from src.errors import UserError
from src.evaluation.metrics import image_metrics, psnr
from src.filters import Filter, stored_filter
from src.inference.predict import predict
from src.io.files import check_writable
from src.io.images import NamedImage
from src.io.plots import pyplot, save_figure
from src.io.tables import write_csv
from src.models.checkpoint import load_model, record_metrics

COLUMNS = ("psnr", "ssim", "mae", "zero_psnr", "border_psnr", "interior_psnr", "max_err_255", "changed_8bit")
FAILED_DB = 0.5  # a model within this of the trivial answer (trivial_answer) has learnt nothing: a failed run


def failed(score: float, trivial: float) -> bool:
    """A score that is not finite, or within ``FAILED_DB`` of the trivial answer's, is a failure, not a result."""
    return not (math.isfinite(score) and score >= trivial + FAILED_DB)


def checkpoint_filter(net: nn.Module, trusted: bool | str | None = False) -> Filter:
    """The reference filter a loaded checkpoint was trained on (name and parameters from ``net.meta``).

    A ``module:function`` filter named in the checkpoint is imported only if ``trusted`` (see
    :func:`src.filters.stored_filter`): a checkpoint is data, never a reason to run code.
    """
    return stored_filter(net.meta["filter"], net.meta["filter_params"], trusted)


def evaluate_images(
    net: nn.Module, flt: Filter, images: list[NamedImage], tile: int | None = None, keep: bool = False,
    backend: str = "auto",
) -> tuple[list[dict], dict]:
    """Metrics for each image and their mean; with ``keep`` the rows also hold the arrays for plotting.

    ``backend`` goes to :func:`predict` (``"torch"`` for modules the OpenCV runtime must not stand in for).
    """
    if not images:
        raise UserError("no images to evaluate")
    rows = []
    for im in images:
        target = flt(im.rgb)
        t0 = time.perf_counter()
        pred = predict(net, im.rgb, tile=tile, backend=backend)
        seconds = time.perf_counter() - t0
        row = {"image": im.name, "size": f"{im.rgb.shape[1]}x{im.rgb.shape[0]}", **image_metrics(pred, target),
               "trivial_psnr": psnr(trivial_answer(im.rgb, target), target), "seconds": seconds}
        if keep:
            row["_arrays"] = (im.rgb, target, pred)
        rows.append(row)
    # a NaN PSNR is a failed prediction and must not vanish from the mean; other columns may be n/a (nan)
    mean = {k: float(np.mean([r[k] for r in rows]) if k == "psnr" else _nanmean([r[k] for r in rows]))
            for k in COLUMNS + ("trivial_psnr", "seconds")}
    return rows, {"image": "mean", "size": "", **mean}


def trivial_answer(rgb: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The do-nothing answer for ``target``: the input itself (RGB targets), all zeros (gray ones)."""
    return rgb.astype(np.float32) / 255 if target.ndim == 3 else np.zeros_like(target)


def trivial_psnr(flt: Filter, data: str = "skimage", split: str = "test") -> float:
    """Mean PSNR of the do-nothing answer (:func:`trivial_answer`) on a split."""
    values = []
    for im in load_split(data, split):
        target = flt(im.rgb)
        values.append(psnr(trivial_answer(im.rgb, target), target))
    return float(np.mean(values))


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def format_table(rows: list[dict], mean: dict) -> str:
    head = (f"{'image':<28}{'size':>10}{'PSNR':>8}{'SSIM':>8}{'MAE':>9}{'zero':>7}{'border':>8}{'inside':>8}"
            f"{'max|e|':>8}{'8-bit':>8}")
    lines = [head, "-" * len(head)]
    for r in rows + [mean]:
        lines.append(f"{r['image'][:27]:<28}{r['size']:>10}{r['psnr']:>8.2f}{_f(r['ssim'], 4):>8}{r['mae']:>9.5f}"
                     f"{r['zero_psnr']:>7.2f}{_f(r['border_psnr'], 2):>8}{_f(r['interior_psnr'], 2):>8}"
                     f"{_f(r['max_err_255'], 2):>8}{_f(100 * r['changed_8bit'], 2):>7}%")
    lines.append("PSNR/SSIM: data range 1, native resolution, borders included; 'zero' = PSNR of predicting all zeros;")
    lines.append("'border' = PSNR on the 4-pixel frame, 'inside' = PSNR on the rest; 'max|e|' = the largest |error| in")
    lines.append("units of 1/255, '8-bit' = the share of values whose 8-bit rendering differs from the target's.")
    return "\n".join(lines)


def _f(v: float, digits: int) -> str:
    return "nan" if v is None or math.isnan(v) else f"{v:.{digits}f}"


def write_results(path: Path, rows: list[dict], mean: dict) -> None:
    """Per-image metrics and their mean (last row) as CSV."""
    write_csv(path, rows + [mean], ["image", "size", *COLUMNS, "trivial_psnr", "seconds"])


def write_grid(path: Path, rows: list[dict], title: str = "", max_rows: int = 6) -> None:
    """Figure: one row per image, columns input | target | prediction | |error| (own colour scale)."""
    rows = [r for r in rows if "_arrays" in r][:max_rows]
    fig, axes = pyplot().subplots(len(rows), 4, figsize=(13, 3.2 * len(rows)), squeeze=False)
    for ax_row, r in zip(axes, rows):
        rgb, target, pred = r["_arrays"]
        err = np.abs(pred.astype(np.float64) - target)
        err = err.max(axis=2) if err.ndim == 3 else err
        cmap = None if target.ndim == 3 else "gray"
        panels = [(rgb, None, f"{r['image']} ({r['size']})"), (target, cmap, "target"),
                  (pred, cmap, f"prediction {r['psnr']:.1f} dB"), (err, "inferno", f"|error| (max {err.max():.2g})")]
        for ax, (img, cm, label) in zip(ax_row, panels):
            im = ax.imshow(img, cmap=cm, vmin=0, vmax=None if cm == "inferno" else 1)
            ax.set_title(label, fontsize=9)
            ax.axis("off")
            if cm == "inferno":
                fig.colorbar(im, ax=ax, fraction=0.046)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m src.evaluation.evaluate", description="Evaluate a checkpoint at native resolution.")
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", default="skimage", help="'skimage' (its test split) or a folder (all images in it)")
    ap.add_argument("--tile", type=int, default=None, help="tiled prediction with N x N tiles")
    ap.add_argument("--figures", default="figures", help="folder for the CSV and the grid figure")
    ap.add_argument("--name", default=None, help="file name stem for the outputs (default: checkpoint name)")
    ap.add_argument("--record", action="store_true",
                    help="also store the mean test metrics in the checkpoint (embedded data only; shown by the demo)")
    ap.add_argument("--trust-filter", action="store_true",
                    help="import the MODULE:FUNCTION filter named in the checkpoint (code; off by default)")
    ap.add_argument("--filter", default=None,
                    help="the checkpoint's filter, named by you (a MODULE:FUNCTION given here is trusted)")
    args = ap.parse_args(argv)

    if args.tile is not None and args.tile < 1:
        raise UserError(f"--tile must be a positive number of pixels, got {args.tile}")
    if args.record and args.data != "skimage":
        raise UserError("--record stores test-split metrics: use it with the embedded data (--data skimage)")
    if args.data != "skimage" and not Path(args.data).exists():
        raise UserError(f"--data {args.data}: no such folder")
    stem = args.name or f"eval-{Path(args.checkpoint).stem}"
    out = check_writable(args.figures, files=(f"{stem}.csv", f"{stem}.png"), what="--figures")
    net = load_model(args.checkpoint)
    if args.filter is not None and args.filter != net.meta["filter"]:
        raise UserError(f"--filter {args.filter!r}: the checkpoint was trained for {net.meta['filter']!r}")
    flt = checkpoint_filter(net, trusted=True if args.trust_filter else args.filter)
    problems: list[str] = []
    notes: list[str] = []
    images = (load_split("skimage", "test") if args.data == "skimage"
              else folder_images(args.data, problems=problems, notes=notes))
    for line in problems:
        print(f"skipped: {line}")
    for line in notes:
        print(f"note: {line}")
    if not images:
        raise UserError(f"--data {args.data}: " + (f"no readable image ({problems[0]})" if problems else "no image files"))
    rows, mean = evaluate_images(net, flt, images, tile=args.tile, keep=True)
    print(f"{args.checkpoint}: {net.meta['model']} network, filter {flt.key}, {len(rows)} image(s)")
    print(format_table(rows, mean))
    if not math.isfinite(mean["psnr"]):
        raise UserError(f"{args.checkpoint}: the mean PSNR is not a number (a prediction failed); no score, nothing written")
    write_results(out / f"{stem}.csv", rows, mean)
    write_grid(out / f"{stem}.png", rows, title=f"{net.meta['model']} / {flt.key}: mean {mean['psnr']:.2f} dB")
    print(f"wrote {out / (stem + '.csv')} and {out / (stem + '.png')}")
    if args.record:
        record_metrics(args.checkpoint, {f"test_{k}": v for k, v in mean.items() if k in COLUMNS})
        print(f"recorded the mean test metrics in {args.checkpoint}")
    return 0


if __name__ == "__main__":
    run_cli(main)
