"""Load benchmark of the Gradio demo: the real server on 127.0.0.1, driven by ``gradio_client``.

    python -m src.demo.load [--model models/sobel.ckpt] [--users 20] [--small-mp 1] [--large-mp 40]

Measures (and prints as a Markdown table, with the machine's load beside it):
0. one ``--small-mp`` request at a time (median of 3), for scale;
1. ``--users`` simultaneous ``--small-mp`` requests: rejected count, p50 / p95 latency;
2. one ``--small-mp`` request sent while a ``--large-mp`` one is in progress: its latency;
3. one ``--large-mp`` request alone: its latency and the server's peak RSS (the server process and its
   children, sampled from /proc every 50 ms).
A benchmark, not a test: targets are 0 rejected, the small request within 3 s, peak RSS within 2.5 GB.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from src.errors import UserError
from src.cli import run_cli
from src.io.memory import PeakRSS, rss_bytes
from src.io.tables import markdown_table

ROOT = Path(__file__).resolve().parents[2]


def photo(megapixels: float, seed: int = 0) -> np.ndarray:
    """A natural-looking RGB test image of about ``megapixels`` (a scikit-image photo resized, plus noise)."""
    import cv2
    import skimage.data

    side = int(round((megapixels * 1e6) ** 0.5))
    h, w = side * 3 // 4 if megapixels > 2 else side, side * 4 // 3 if megapixels > 2 else side
    img = cv2.resize(skimage.data.astronaut(), (w, h), interpolation=cv2.INTER_LINEAR)
    noise = np.random.default_rng(seed).integers(-8, 9, img.shape, dtype=np.int16)
    return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def start_server(model: str, port: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONWARNINGS="ignore", GRADIO_ANALYTICS_ENABLED="False")
    models_dir = tempfile.mkdtemp(prefix="demo-load-models-")  # only --model is offered
    proc = subprocess.Popen([sys.executable, str(ROOT / "demo_gradio.py"), "--port", str(port), "--model", model,
                             "--models-dir", models_dir], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise UserError(f"the demo exited with {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                return proc
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise UserError("the demo did not answer within 120 s") from None
            time.sleep(0.5)


def timed(client, path: Path) -> tuple[float, str | None]:
    """Seconds for one ``/predict`` call and the error text (None when it succeeded)."""
    from gradio_client import handle_file

    t0 = time.perf_counter()
    try:
        client.submit(handle_file(str(path)), api_name="/predict").result(timeout=600)
        return time.perf_counter() - t0, None
    except Exception as exc:  # a rejected or failed request is counted, not raised
        return time.perf_counter() - t0, str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    import cv2
    from gradio_client import Client

    ap = argparse.ArgumentParser(prog="python -m src.demo.load", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/sobel.ckpt")
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--small-mp", type=float, default=1.0)
    ap.add_argument("--large-mp", type=float, default=40.0)
    args = ap.parse_args(argv)
    if not Path(args.model).is_file():
        raise UserError(f"--model {args.model}: no such checkpoint")

    work = Path(tempfile.mkdtemp(prefix="demo-load-"))
    small, large = work / "small.png", work / "large.png"
    for path, mp in ((small, args.small_mp), (large, args.large_mp)):
        cv2.imwrite(str(path), cv2.cvtColor(photo(mp), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    load_before = os.getloadavg()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = start_server(args.model, port)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=str(work / "dl"),
                        httpx_kwargs={"timeout": 600})
        timed(client, small)  # warm-up: model load, first PNG encode
        idle_rss = rss_bytes(proc.pid)
        alone = float(np.median([timed(client, small)[0] for _ in range(3)]))

        with ThreadPoolExecutor(args.users) as pool:
            results = list(pool.map(lambda _: timed(client, small), range(args.users)))
        lat = np.array([t for t, e in results if e is None])
        errors = [e for _, e in results if e is not None]

        with ThreadPoolExecutor(2) as pool:
            big = pool.submit(timed, client, large)
            time.sleep(3.0)  # the large request is being processed by then
            small_during, small_err = pool.submit(timed, client, small).result()
            big_during, big_err = big.result()

        with PeakRSS(proc.pid) as peak:
            big_alone, big_alone_err = timed(client, large)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    load_after = os.getloadavg()

    h, w = cv2.imread(str(large), cv2.IMREAD_UNCHANGED).shape[:2]
    rows = [
        (f"one {args.small_mp:g} MP request alone (median of 3)", "ok", f"{alone:.2f} s"),
        (f"{args.users} simultaneous {args.small_mp:g} MP requests", f"{len(errors)} rejected/failed"
         + (f" ({errors[0]})" if errors else ""),
         f"p50 {np.percentile(lat, 50):.2f} s, p95 {np.percentile(lat, 95):.2f} s" if lat.size else "-"),
        (f"one {args.small_mp:g} MP request while a {w * h / 1e6:.0f} MP one runs",
         small_err or "ok", f"{small_during:.2f} s (the large one: {big_during:.1f} s{', ' + big_err if big_err else ''})"),
        (f"one {w * h / 1e6:.0f} MP request alone ({w}x{h})", big_alone_err or "ok",
         f"{big_alone:.1f} s, peak server RSS {peak.peak / 2**30:.2f} GB (idle {idle_rss / 2**30:.2f} GB)"),
    ]
    print(markdown_table(["measurement", "outcome", "result"], rows))
    print(f"\nmachine: {os.cpu_count()} cores, load average {load_before[0]:.1f} before / {load_after[0]:.1f} after "
          "(other processes included)")
    return 0


if __name__ == "__main__":
    run_cli(main)
