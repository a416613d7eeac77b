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
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import skimage.data

from src.cli import run_cli
from src.errors import UserError
from src.io.memory import PeakRSS, rss_bytes
from src.io.tables import markdown_table

ROOT = Path(__file__).resolve().parents[2]


def photo(megapixels: float, seed: int = 0) -> np.ndarray:
    """A natural-looking RGB test image of about ``megapixels`` (a scikit-image photo resized, plus noise)."""
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
    from gradio_client import handle_file  # start-up: gradio only when called

    t0 = time.perf_counter()
    try:
        client.submit(handle_file(str(path)), api_name="/predict").result(timeout=600)
        return time.perf_counter() - t0, None
    except Exception as exc:  # a rejected or failed request is counted, not raised
        return time.perf_counter() - t0, str(exc).splitlines()[0] if str(exc) else type(exc).__name__


@dataclass
class LoadConfig:
    """What to benchmark: the checkpoint served and the request sizes (see the module docstring)."""
    model: str = "models/sobel.ckpt"
    users: int = 20
    small_mp: float = 1.0
    large_mp: float = 40.0


@dataclass
class Measured:
    """Seconds and error texts (None when a request succeeded) per measurement, and the server's memory."""
    alone: float
    latencies: np.ndarray  # of the simultaneous requests that succeeded
    errors: list[str]
    small_during: float
    small_err: str | None
    big_during: float
    big_err: str | None
    big_alone: float
    big_alone_err: str | None
    idle_rss: int
    peak_rss: int


@dataclass
class LoadResult:
    """The measurements, the large image's size and the machine's load around them."""
    measured: Measured
    large_size: tuple[int, int]  # (width, height)
    load_before: float  # 1-minute load average of the machine
    load_after: float


def parse_args(argv: Sequence[str] | None = None) -> LoadConfig:
    """The command line as a ``LoadConfig``; the checkpoint must exist."""
    ap = argparse.ArgumentParser(prog="python -m src.demo.load", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=LoadConfig.model)
    ap.add_argument("--users", type=int, default=LoadConfig.users)
    ap.add_argument("--small-mp", type=float, default=LoadConfig.small_mp)
    ap.add_argument("--large-mp", type=float, default=LoadConfig.large_mp)
    args = ap.parse_args(argv)
    if not Path(args.model).is_file():
        raise UserError(f"--model {args.model}: no such checkpoint")
    return LoadConfig(args.model, args.users, args.small_mp, args.large_mp)


def write_photo(path: Path, megapixels: float) -> Path:
    """``photo(megapixels)`` as a quickly compressed PNG at ``path``."""
    cv2.imwrite(str(path), cv2.cvtColor(photo(megapixels), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that the system reports free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(client, pid: int, small: Path, large: Path, users: int) -> Measured:
    """The four measurements of the module docstring, after one warm-up request."""
    timed(client, small)  # warm-up: model load, first PNG encode
    idle_rss = rss_bytes(pid)
    alone = float(np.median([timed(client, small)[0] for _ in range(3)]))

    with ThreadPoolExecutor(users) as pool:
        results = list(pool.map(lambda _: timed(client, small), range(users)))

    with ThreadPoolExecutor(2) as pool:
        big = pool.submit(timed, client, large)
        time.sleep(3.0)  # the large request is being processed by then
        small_during, small_err = pool.submit(timed, client, small).result()
        big_during, big_err = big.result()

    with PeakRSS(pid) as peak:
        big_alone, big_alone_err = timed(client, large)
    return Measured(alone, np.array([t for t, e in results if e is None]), [e for _, e in results if e is not None],
                    small_during, small_err, big_during, big_err, big_alone, big_alone_err, idle_rss, peak.peak)


def run_load(cfg: LoadConfig) -> LoadResult:
    """Start the demo on a free port, measure, stop it."""
    from gradio_client import Client  # start-up: gradio_client loads in ~0.3 s, not needed for --help

    work = Path(tempfile.mkdtemp(prefix="demo-load-"))
    small = write_photo(work / "small.png", cfg.small_mp)
    large = write_photo(work / "large.png", cfg.large_mp)
    load_before = os.getloadavg()
    port = free_port()
    proc = start_server(cfg.model, port)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=str(work / "dl"),
                        httpx_kwargs={"timeout": 600})
        measured = measure(client, proc.pid, small, large, cfg.users)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    load_after = os.getloadavg()
    h, w = cv2.imread(str(large), cv2.IMREAD_UNCHANGED).shape[:2]
    return LoadResult(measured, (w, h), load_before[0], load_after[0])


def report(cfg: LoadConfig, r: LoadResult) -> str:
    """The Markdown table and the machine's load, as printed."""
    w, h = r.large_size
    m = r.measured
    lat, errors = m.latencies, m.errors
    rows = [
        (f"one {cfg.small_mp:g} MP request alone (median of 3)", "ok", f"{m.alone:.2f} s"),
        (f"{cfg.users} simultaneous {cfg.small_mp:g} MP requests", f"{len(errors)} rejected/failed"
         + (f" ({errors[0]})" if errors else ""),
         f"p50 {np.percentile(lat, 50):.2f} s, p95 {np.percentile(lat, 95):.2f} s" if lat.size else "-"),
        (f"one {cfg.small_mp:g} MP request while a {w * h / 1e6:.0f} MP one runs", m.small_err or "ok",
         f"{m.small_during:.2f} s (the large one: {m.big_during:.1f} s{', ' + m.big_err if m.big_err else ''})"),
        (f"one {w * h / 1e6:.0f} MP request alone ({w}x{h})", m.big_alone_err or "ok",
         f"{m.big_alone:.1f} s, peak server RSS {m.peak_rss / 2**30:.2f} GB (idle {m.idle_rss / 2**30:.2f} GB)"),
    ]
    return (markdown_table(["measurement", "outcome", "result"], rows)
            + f"\n\nmachine: {os.cpu_count()} cores, load average {r.load_before:.1f} before / {r.load_after:.1f} "
            "after (other processes included)")


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    print(report(cfg, run_load(cfg)))
    return 0


if __name__ == "__main__":
    run_cli(main)
