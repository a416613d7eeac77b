"""Memory soak of the Gradio demo: the real server on 127.0.0.1, driven by ``gradio_client`` as a script would.

    python -m src.demo.soak [--jobs 50] [--predictions 200] [--steps 40] [--model compact] [--mp 1]

``--jobs`` teach-by-example jobs one after another (``/teach``, a ``--mp`` before/after pair, ``--steps`` each)
with ``--predictions`` ``/predict`` calls spread between them; the server's RSS (its process tree, from /proc)
after each job. The figure that matters is the growth from the end of the first job (model code loaded, caches
warm) to the end: a server that keeps something per job grows with the jobs. Goal: <= 300 MB.
Prints a Markdown table; ``--out`` writes it too (atomically).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from src.cli import run_cli
from src.demo.load import free_port, photo, start_server
from src.errors import UserError
from src.io.files import atomic_write_bytes
from src.io.memory import rss_bytes
from src.io.tables import markdown_table

GOAL_MB = 300


def write_pair(folder: Path, megapixels: float) -> tuple[Path, Path]:
    """A before/after pair of about ``megapixels``: a photo and its 5x5 Gaussian blur (PNG, lossless)."""
    before = photo(megapixels)
    after = cv2.GaussianBlur(before, (5, 5), 0)
    paths = folder / "before.png", folder / "after.png"
    for path, img in zip(paths, (before, after)):
        cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return paths


def soak(jobs: int, predictions: int, steps: int, model: str, megapixels: float) -> dict:
    """Run the soak against a fresh server; the server's RSS in bytes after each job, and seconds taken."""
    from gradio_client import Client, handle_file  # start-up: gradio only when called

    work = Path(tempfile.mkdtemp(prefix="demo-soak-"))
    before, after = write_pair(work, megapixels)
    port = free_port()
    proc = start_server("models/sobel.ckpt", port)
    rss, t0 = [], time.monotonic()
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=str(work / "dl"),
                        httpx_kwargs={"timeout": 600})
        per_job = [predictions // jobs + (i < predictions % jobs) for i in range(jobs)]
        for n in per_job:
            client.predict(handle_file(str(before)), handle_file(str(after)), model, steps, api_name="/teach")
            for _ in range(n):
                client.predict(handle_file(str(before)), api_name="/predict")
            rss.append(rss_bytes(proc.pid))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {"rss": rss, "seconds": time.monotonic() - t0}


def report(args: argparse.Namespace, result: dict) -> str:
    rss = np.array(result["rss"]) / 2**20
    growth = rss[-1] - rss[0]
    rows = [("server RSS after the first job", f"{rss[0]:.0f} MB"),
            ("after the last job", f"{rss[-1]:.0f} MB (max {rss.max():.0f} MB)"),
            ("growth from the first job to the end", f"{growth:+.0f} MB (goal <= {GOAL_MB} MB: "
                                                      f"{'met' if growth <= GOAL_MB else 'missed'})"),
            ("per job, least-squares slope", f"{np.polyfit(np.arange(rss.size), rss, 1)[0]:+.1f} MB"
                                             if rss.size > 1 else "-")]
    return (markdown_table(["measurement", "value"], rows) + "\n\n"
            f"`python -m src.demo.soak --jobs {args.jobs} --predictions {args.predictions} --steps {args.steps} "
            f"--model {args.model} --mp {args.mp:g}`: {args.jobs} /teach jobs one after another ({args.model}, "
            f"{args.steps} steps, a {args.mp:g} MP pair) and {args.predictions} /predict calls between them, "
            f"{result['seconds']:.0f} s in all.\n")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m src.demo.soak", description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=50)
    ap.add_argument("--predictions", type=int, default=200)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--model", default="compact", help="the network /teach trains")
    ap.add_argument("--mp", type=float, default=1.0, help="megapixels of the before/after pair")
    ap.add_argument("--out", type=Path, default=None, help="also write the table here (Markdown)")
    args = ap.parse_args(argv)
    if args.jobs < 1 or args.predictions < 0 or args.steps < 1 or args.mp <= 0:
        raise UserError("--jobs and --steps must be >= 1, --predictions >= 0, --mp > 0")
    text = report(args, soak(args.jobs, args.predictions, args.steps, args.model, args.mp))
    print(text)
    if args.out:
        atomic_write_bytes(args.out, text.encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
