"""Huge images through the ``predict`` command: time and peak memory, tiles streamed to disk (``make bench``).

    python -m src.bench.huge [--checkpoint models/sobel.ckpt] [--sizes 24 100] [--tile 1024] [--out figures/huge]

Each size: a PNG of the astronaut resized, run by a fresh ``python -m src.inference.predict`` process; its exact
peak RSS from the kernel (``os.wait4``), its time from the command's summary (read, predict, write). The first
row, a 64x64 image, is the process alone (Python, torch, the model), subtracted to give what the image costs;
the last runs the largest size whole (no ``--tile``), to show what streaming the bands saves. Writes ``OUT.md``.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import cv2

from src.cli import run_cli
from src.dataset.sources import photo
from src.errors import UserError
from src.io.files import atomic_write_bytes
from src.io.memory import measured
from src.io.tables import markdown_table, stamp

ROOT = Path(__file__).resolve().parents[2]
BUDGET_GIB = 0.5  # the goal: peak memory at most the input plus this


def run_predict(checkpoint: str, image: Path, out_dir: Path, tile: int | None) -> tuple[float, float]:
    """``(seconds, peak RSS in GiB)`` of one ``predict`` process on ``image``."""
    cmd = [sys.executable, "-m", "src.inference.predict", "--checkpoint", checkpoint, "--input", str(image),
           "--output", str(out_dir), "--overwrite", "--no-progress", "--max-mp", "1000"]
    run = measured(cmd + (["--tile", str(tile)] if tile else []), cwd=ROOT)
    seconds = re.search(r" in ([0-9.]+) s:", run["output"])  # the summary line
    if run["rc"] != 0 or seconds is None:
        raise UserError(f"predict failed on {image.name} (exit {run['rc']}): {run['output'].strip()[-300:]}")
    return float(seconds.group(1)), run["max_rss_mb"] / 2**10


def measure(checkpoint: str, sizes: Sequence[float], tile: int) -> list[list[str]]:
    """One table row per run: image, tile, seconds, MP/s, input, peak, peak - process - input (GiB), within."""
    with tempfile.TemporaryDirectory(prefix="huge-bench-") as tmp:
        tmp = Path(tmp)
        cv2.imwrite(str(tmp / "small.png"), photo(64 * 64 / 1e6))
        _, base = run_predict(checkpoint, tmp / "small.png", tmp / "out", tile)
        rows = [["64x64 (the process alone)", str(tile), "–", "–", "0.00", f"{base:.2f}", "–", "–"]]
        for mp, t in [(mp, tile) for mp in sizes] + [(max(sizes), None)]:
            img, path = photo(mp), tmp / f"{mp:g}mp.png"
            cv2.imwrite(str(path), img[:, :, ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])
            seconds, peak = run_predict(checkpoint, path, tmp / "out", t)
            (h, w), input_gib = img.shape[:2], img.nbytes / 2**30
            extra = peak - base - input_gib
            rows.append([f"{w}x{h} = {w * h / 1e6:.0f} MP", str(t or "none (whole)"), f"{seconds:.1f}",
                         f"{w * h / 1e6 / seconds:.1f}", f"{input_gib:.2f}", f"{peak:.2f}", f"{extra:+.2f}",
                         "yes" if extra <= BUDGET_GIB else "no"])
            path.unlink()
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m src.bench.huge", description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="models/sobel.ckpt")
    ap.add_argument("--sizes", type=float, nargs="+", default=[24.0, 100.0], help="megapixels")
    ap.add_argument("--tile", type=int, default=1024)
    ap.add_argument("--out", default="figures/huge", help="writes OUT.md")
    args = ap.parse_args(argv)
    if min(args.sizes) <= 0 or args.tile < 1:
        raise UserError("--sizes and --tile must be positive")
    command = "python -m src.bench.huge " + " ".join(argv if argv is not None else sys.argv[1:])
    table = markdown_table(["image", "--tile", "s (read, predict, write)", "MP/s", "input GiB", "peak RSS GiB",
                            "peak - process - input GiB", f"within input + {BUDGET_GIB} GiB"],
                           measure(args.checkpoint, args.sizes, args.tile))
    md = f"Made by `{command.strip()}` {stamp()}, {os.cpu_count()} cores.\n\n{table}"
    atomic_write_bytes(Path(args.out).with_name(Path(args.out).name + ".md"), md.encode())
    print(md, end="")
    return 0


if __name__ == "__main__":
    run_cli(main)
