"""The Teach-by-example target, measured: one 768x512 before/after pair in, held-out photos scored.

    python -m src.studies.teach_target [--out figures] [--cases random sobel ...]

The *before* image is scikit-image's ``coffee`` photo resized to 768x512; the *after* image is a
filter's output on it, rounded to 8 bits as a user's PNG would be. :func:`src.training.teach.teach`
learns from that one pair with its default budget, and the learned network is scored against the
float reference filter on the other photos of the embedded test split (astronaut, camera, coins:
never seen). CPU seconds are the process's (``time.process_time``), which a busy machine does not
inflate the way it inflates wall-clock time; both are reported. For a photographic operator there is no
exact answer: the row reports the gain over the trivial baseline on the held-out stripe.
Writes ``<out>/teach.md`` and ``<out>/teach.csv``.
"""
from __future__ import annotations

import argparse
import csv
import io
import tempfile
import time
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import skimage.data

from src.cli import run_cli
from src.dataset.sources import embedded_images
from src.evaluation.metrics import psnr
from src.io.files import atomic_write_bytes
from src.io.images import to_uint8

# name -> (filter, params, network)
CASES: dict[str, tuple[str, dict, str]] = {
    "random": ("random", {"seed": 0, "size": 5}, "compact"),
    "sobel": ("sobel", {}, "compact"),
    "sobel-5x5": ("sobel", {"blur": False, "ksize": 5, "normalize": "max"}, "compact"),
    # clipped at 1: most of the after image saturates, where the net's output clamp passes no gradient
    "sobel-5x5-clip": ("sobel", {"blur": False, "ksize": 5}, "compact"),
    "detail-enhance": ("detail-enhance", {}, "compact"),
    "detail-enhance-can": ("detail-enhance", {}, "can"),
}
PAIR_SIZE = (768, 512)  # width, height


def before_image() -> np.ndarray:
    return cv2.resize(skimage.data.coffee(), PAIR_SIZE, interpolation=cv2.INTER_AREA)


def run_case(name: str, workdir: Path) -> dict:
    from src.filters import get_filter  # start-up: torch only when called
    from src.inference.predict import predict  # start-up: torch only when called
    from src.models import load_model  # start-up: torch only when called
    from src.training.teach import teach  # start-up: Lightning only when called

    filter_name, params, model = CASES[name]
    flt = get_filter(filter_name, **params)
    before = before_image()
    after = to_uint8(flt(before))  # 8 bits, as an uploaded PNG
    cpu0, wall0 = time.process_time(), time.perf_counter()
    ckpt, s = teach(before, after, model, workdir=workdir / name)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    net = load_model(ckpt)
    photos = {im.name: psnr(predict(net, im.rgb), flt(im.rgb)) for im in embedded_images("test") if im.name != "coffee"}
    return {
        "case": name, "filter": flt.key, "network": model, "params": s["params"], "steps": s["steps"],
        "cpu_s": round(cpu, 1), "wall_s": round(wall, 1), "stripe_psnr": round(s["holdout_psnr"], 2),
        "baseline": s["baseline"], "baseline_psnr": round(s["baseline_psnr"], 2), "gain_db": round(s["gain_db"], 2),
        "photos_min_psnr": round(min(photos.values()), 2), "photos_mean_psnr": round(float(np.mean(list(photos.values()))), 2),
    }


def markdown(rows: list[dict]) -> str:
    head = ("| filter | network | steps | CPU s | wall s | held-out stripe PSNR | baseline PSNR | gain | "
            "unseen photos PSNR (min / mean) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(f"| {r['filter']} | {r['network']} ({r['params']} params) | {r['steps']} | {r['cpu_s']} | "
                     f"{r['wall_s']} | {r['stripe_psnr']} | {r['baseline_psnr']} ({r['baseline']}) | "
                     f"+{r['gain_db']} dB | {r['photos_min_psnr']} / {r['photos_mean_psnr']} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m src.studies.teach_target", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="figures", help="folder for teach.md and teach.csv")
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    args = ap.parse_args(argv)
    rows, out = [], Path(args.out)
    with tempfile.TemporaryDirectory(prefix="teach-target-") as tmp:
        for name in args.cases:  # the tables are rewritten after each case: an interrupted run keeps its rows
            rows.append(run_case(name, Path(tmp)))
            print(rows[-1], flush=True)
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
            atomic_write_bytes(out / "teach.csv", buf.getvalue().encode())
            atomic_write_bytes(out / "teach.md", markdown(rows).encode())
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    run_cli(main)
