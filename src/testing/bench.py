"""CPU inference speed of the default model next to the OpenCV Sobel pipeline (``make bench``).

    python -m src.testing.bench [--checkpoint models/sobel.ckpt] [--repeats 15]

Times whole calls, uint8 RGB in -> float32 map out, on a 1 MP and a 4 MP photo (scikit-image's
astronaut resized), median of ``--repeats`` runs after one warm-up.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Sequence

import cv2
import numpy as np
import torch

from src.errors import run_cli


def photo(megapixels: float) -> np.ndarray:
    import skimage.data

    side = int(round((megapixels * 1e6) ** 0.5))
    return cv2.resize(skimage.data.astronaut(), (side, side), interpolation=cv2.INTER_CUBIC)


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: Sequence[str] | None = None) -> int:
    from src.models import load_model
    from src.testing.evaluate import checkpoint_filter
    from src.testing.predict import predict

    ap = argparse.ArgumentParser(prog="python -m src.testing.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="models/sobel.ckpt")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--sizes", type=float, nargs="+", default=[1.0, 4.0], help="megapixels")
    ap.add_argument("--large", type=float, default=None, metavar="MP",
                    help="instead: one tiled prediction of an MP-megapixel photo, with time and peak memory")
    ap.add_argument("--tile", type=int, default=1024, help="tile size for --large")
    args = ap.parse_args(argv)
    if args.large:
        return large_image_run(args.checkpoint, args.large, args.tile)

    net = load_model(args.checkpoint)
    flt = checkpoint_filter(net)
    print(f"checkpoint {args.checkpoint} ({net.meta['model']}, filter {flt.key}); "
          f"torch threads {torch.get_num_threads()}, OpenCV threads {cv2.getNumThreads()}")
    head = f"{'image':>8} {'OpenCV pipeline':>16} {'net (predict)':>14} {'ratio':>6} {'net (torch eager)':>18} {'ratio':>6}"
    print(head)
    print("-" * len(head))
    for mp in args.sizes:
        img = photo(mp)
        mpx = img.shape[0] * img.shape[1] / 1e6
        ref = mpx / median_seconds(lambda: flt(img), args.repeats)
        fast = mpx / median_seconds(lambda: predict(net, img), args.repeats)
        eager = mpx / median_seconds(lambda: predict(net, img, backend="torch"), max(3, args.repeats // 5))
        print(f"{mpx:>6.1f}MP {ref:>11.1f} MP/s {fast:>9.1f} MP/s {fast / ref:>5.2f}x {eager:>13.1f} MP/s {eager / ref:>5.2f}x")
    print("ratio = network MP/s / OpenCV MP/s (higher is better); 'predict' uses OpenCV kernels for the compact net.")
    print()
    layer_table(photo(1.0), args.repeats)
    return 0


def large_image_run(checkpoint: str, megapixels: float, tile: int) -> int:
    """Tiled prediction of one huge photo: wall time and the process's peak resident memory."""
    import resource

    from src.models import load_model
    from src.testing.predict import predict

    net = load_model(checkpoint)
    img = photo(megapixels)
    t0 = time.perf_counter()
    out = predict(net, img, tile=tile)
    seconds = time.perf_counter() - t0
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    h, w = img.shape[:2]
    print(f"{w}x{h} = {w * h / 1e6:.0f} MP, tiles of {tile}: {seconds:.1f} s ({w * h / 1e6 / seconds:.1f} MP/s), "
          f"peak RSS {peak_gib:.2f} GiB (input {img.nbytes / 2**30:.2f} GiB uint8, output {out.nbytes / 2**30:.2f} GiB float32)")
    return 0


def layer_table(img: np.ndarray, repeats: int) -> None:
    """Why the OpenCV runtime: one 5x5 convolution of a gray megapixel into 2 channels, each way."""
    import torch.nn.functional as F

    gray = cv2.cvtColor(img.astype(np.float32) / 255, cv2.COLOR_RGB2GRAY)
    k = np.random.default_rng(0).standard_normal((2, 1, 5, 5)).astype(np.float32)
    x = torch.from_numpy(gray)[None, None]
    w = torch.from_numpy(k)
    mpx = gray.size / 1e6
    rows = []
    with torch.inference_mode():
        xp = F.pad(x, (2, 2, 2, 2), mode="reflect")
        rows.append(("torch conv2d (NCHW, inference_mode)", median_seconds(lambda: F.conv2d(xp, w), repeats)))
        xc, wc = xp.contiguous(memory_format=torch.channels_last), w.contiguous(memory_format=torch.channels_last)
        rows.append(("torch conv2d (channels_last)", median_seconds(lambda: F.conv2d(xc, wc), repeats)))
    with torch.no_grad():
        rows.append(("torch conv2d (NCHW, no_grad)", median_seconds(lambda: F.conv2d(xp, w), repeats)))
    rows.append(("cv2.filter2D x 2 (reflect-101)", median_seconds(
        lambda: [cv2.filter2D(gray, cv2.CV_32F, k[o, 0], borderType=cv2.BORDER_REFLECT_101) for o in range(2)], repeats)))
    print(f"{'one 5x5 conv, 1 -> 2 channels, 1 MP':<40} {'ms/MP':>8}")
    for name, sec in rows:
        print(f"{name:<40} {sec * 1e3 / mpx:>8.2f}")


if __name__ == "__main__":
    run_cli(main)
