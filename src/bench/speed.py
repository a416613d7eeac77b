"""CPU inference speed of the default model's runtimes next to the OpenCV Sobel pipeline (``make bench``).

    python -m src.bench.speed [--checkpoint models/sobel.ckpt] [--sizes 1 4 24] [--repeats 15] [--out figures/bench]

In one process, on the same photos (scikit-image's astronaut resized to 1, 4 and 24 MP), whole calls
uint8 RGB in -> float32 map out, median of ``--repeats`` calls after one warm-up, all of them called in
turn (so a shared machine's changing load weighs on each alike): the OpenCV pipeline the
net imitates, and each runtime of the net (``predict``'s fused row bands, whole and tiled; the bands
on a thread pool; the same OpenCV steps over the whole image; torch eager; one ``torch.compile`` pass; an exact Sobel net with
separable vs full kernels), each with its ratio to the pipeline, its max abs difference from the torch
forward, and its fraction of the memory-bandwidth bound: this machine's copy bandwidth (a large
``np.copyto`` split over the same threads) over the 7 bytes a pixel must move (3 in, 4 out).
Writes ``OUT.md`` and ``OUT.csv``.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import functools
import itertools
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from src.cli import run_cli
from src.dataset.sources import photo
from src.errors import UserError
from src.evaluation.evaluate import checkpoint_filter
from src.inference.predict import predict
from src.inference.runtime import POOL_PIXELS, compiled_fused_torch, fused_runner, fused_weights, numba_runner
from src.io.files import atomic_write_bytes
from src.io.tables import markdown_table, write_csv
from src.io.timing import interleaved_medians, median_seconds
from src.models import exact_sobel_net, load_model

BYTES_PER_PIXEL = 7  # uint8 RGB in, float32 out: what any runtime must move at least
TORCH_RUN = ("can", "pix2pix", "unet", "autoencoder")  # predict runs these in torch: --compile applies


def split_copy(nbytes: int, threads: int, pool: ThreadPoolExecutor) -> Callable[[], np.ndarray]:
    """A call that copies ``nbytes`` with ``np.copyto``, split into ``threads`` slices on ``pool``."""
    src, dst = np.ones(nbytes, np.uint8), np.zeros(nbytes, np.uint8)
    cuts = np.linspace(0, nbytes, threads + 1).astype(int)

    def copy() -> np.ndarray:
        list(pool.map(lambda i: np.copyto(dst[cuts[i]:cuts[i + 1]], src[cuts[i]:cuts[i + 1]]), range(threads)))
        return dst
    return copy


def copy_bandwidth(threads: int, megabytes: int = 256, repeats: int = 15) -> float:
    """Bytes per second (read + write) of a large ``np.copyto`` split into ``threads`` slices."""
    with ThreadPoolExecutor(threads) as pool:
        return 2 * megabytes * 2**20 / median_seconds(split_copy(megabytes * 2**20, threads, pool), repeats)


def max_error(result: np.ndarray, truth: np.ndarray) -> float:
    """Max abs difference from the torch forward (a uint8 result read as round(255 y))."""
    return float(np.abs((result / 255.0 if result.dtype == np.uint8 else result) - truth).max())


def runtimes(net, img: np.ndarray, compile_cpu: bool) -> list[tuple[str, Callable[[], np.ndarray], str]]:
    """(name, call, note) for every runtime measured at this size; each call returns ``(H, W)`` float32."""
    mpx = img.shape[0] * img.shape[1] / 1e6

    pooled = img.shape[0] * img.shape[1] >= POOL_PIXELS
    u8 = numba_runner(net, out_dtype=np.uint8)
    rows = [("predict (default: numba one pass)", lambda: predict(net, img), "bands to whichever thread is free")]
    reused = np.empty(img.shape[:2], np.float32)  # as the copy writes into one array, call after call
    rows.append(("predict, out= one array reused", lambda: predict(net, img, out=reused),
                 "no fresh output pages to zero, as the copy"))
    if u8 is not None:
        rows.append(("numba one pass, uint8 out", lambda: u8(img)[0], "round(255 y): 4 of the 7 bytes a pixel"))
    rows += [("predict backend=opencv: fused row bands", lambda: predict(net, img, backend="opencv"),
             "bands on a thread pool (large image)" if pooled else "bands in turn, OpenCV's threads within")]
    if mpx > 8:
        rows.append(("predict: numba one pass, tiles of 1024", lambda: predict(net, img, tile=1024), ""))
    in_turn = fused_runner(net, threads=1)
    rows.append(("fused row bands in turn", lambda: in_turn(img)[0], "OpenCV's threads within each step"))
    pool = fused_runner(net, threads=2)
    rows.append(("fused row bands on a 2-thread pool", lambda: pool(img)[0], "bands shared out by Python threads"))
    whole = fused_runner(net, band_pixels=0)
    rows.append(("same OpenCV steps, whole image at once", lambda: whole(img)[0], "no bands: the previous runtime's form"))
    if mpx <= 8:
        rows.append(("torch eager (predict backend=torch)", lambda: predict(net, img, backend="torch"), ""))
    if compile_cpu and mpx <= 8:
        weights, fn, x = fused_weights(net), compiled_fused_torch(), torch.from_numpy(img)[None]

        def compiled() -> np.ndarray:
            with torch.inference_mode():
                return fn(x, **weights)[0, 0].numpy()
        t0 = time.perf_counter()
        compiled()
        rows.append(("torch.compile single pass (inductor, CPU)", compiled, f"first call {time.perf_counter() - t0:.0f} s"))
    exact = exact_sobel_net()
    for sep, what in ((True, "sepFilter2D"), (False, "filter2D")):
        run = fused_runner(exact, separable=sep)
        rows.append((f"exact Sobel net, fused, {what}", lambda run=run: run(img)[0], "hand-set rank-1 kernels, same weights"))
    return rows


def svd_split_errors(net, img: np.ndarray, truth: np.ndarray) -> dict[int, float]:
    """Max abs output error if the bank's kernels were cut to their first r singular terms (r separable
    passes each), for r = 1, 2: the price of an SVD split the runtime does not pay (it stays exact)."""
    errors = {}
    for rank in (1, 2):
        cut = copy.deepcopy(net)
        if getattr(cut, "bank_rows", None) is not None:
            return {}  # a separable net's kernels are rank 1 already
        with torch.no_grad():
            w = cut.bank.weight.double()
            u, sv, vh = torch.linalg.svd(w)
            cut.bank.weight.copy_((u[..., :rank] * sv[..., None, :rank]) @ vh[..., :rank, :])
        errors[rank] = float(np.abs(fused_runner(cut)(img)[0] - truth).max())
    return errors


def _torch_forward(net, img: np.ndarray) -> np.ndarray:
    return predict(net, img, backend="torch")


def measure(checkpoint: str, sizes: Sequence[float], repeats: int, compile_cpu: bool,
            copy_mb: int = 256) -> tuple[list[dict], dict]:

    net = load_model(checkpoint)
    flt = checkpoint_filter(net)
    threads = cv2.getNumThreads()
    bandwidth = copy_bandwidth(threads, copy_mb)
    bound = bandwidth / BYTES_PER_PIXEL / 1e6
    info = dict(checkpoint=checkpoint, model=net.meta["model"], filter=flt.key, threads=threads,
                torch_threads=torch.get_num_threads(), bandwidth_gbs=bandwidth / 1e9, bound_mps=bound,
                load=os.getloadavg(), cores=os.cpu_count(), repeats=repeats, copy_mb=copy_mb,
                date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    rows = []
    pool = ThreadPoolExecutor(threads)  # the same-size copies' threads
    for mp in sizes:
        img = photo(mp)
        mpx = img.shape[0] * img.shape[1] / 1e6
        truth = _torch_forward(net, img)
        exact_truth = _torch_forward(exact_sobel_net(), img)
        # a copy of as many bytes as a runtime moves on this image (3 in, 4 out a pixel)
        copy = split_copy(img.shape[0] * img.shape[1] * BYTES_PER_PIXEL, threads, pool)
        cases = [("OpenCV Sobel pipeline (reference)", lambda: flt(img), ""),
                 (f"copy of the same bytes (np.copyto, {BYTES_PER_PIXEL} B/px, {threads} threads)", copy, "the bound")]
        cases += runtimes(net, img, compile_cpu)
        errors = [None, None] + [max_error(call(), exact_truth if name.startswith("exact Sobel") else truth)
                                 for name, call, _ in cases[2:]]
        seconds = interleaved_medians([call for _, call, _ in cases], repeats)
        ref_mps, copy_mps = mpx / seconds[0], mpx / seconds[1]
        for (name, _, note), err, sec in zip(cases, errors, seconds):
            mps = mpx / sec
            rows.append(dict(megapixels=round(mpx, 2), runtime=name, mps=mps, ratio=mps / ref_mps,
                             copy_fraction=mps / copy_mps, bound_fraction=mps / bound, max_abs_err=err, note=note))
            print(f"{mpx:6.2f} MP  {name:<45} {mps:8.1f} MP/s  {mps / ref_mps:5.2f}x" +
                  ("" if err is None else f"  err {err:.1e}"), flush=True)
        if mpx < 2 and net.meta["model"] == "compact":
            info["svd_split_errors"] = svd_split_errors(net, img, truth)
    pool.shutdown()
    return rows, info


def shipped_models(sizes: Sequence[float], repeats: int) -> list[dict]:
    """Every shipped checkpoint (``models/*.ckpt``, ``models/operators/*.ckpt``) through ``predict``, default
    backend, at each size (torch's networks also ``--compile``d); then the detail-enhance grid in its torch form
    (its numba runtime's row is above) and the operator it replaces (``cv2.detailEnhance``), on the same photos."""
    from src.filters import get_filter  # start-up: torch only when called

    calls = []
    for path in [*sorted(Path("models").glob("*.ckpt")), *sorted(Path("models/operators").glob("*.ckpt"))]:
        net = load_model(path)
        calls.append((str(path), net.meta["model"], functools.partial(predict, net)))
        if net.meta["model"] in TORCH_RUN:  # the warm-up call compiles: not timed
            calls.append((f"{path} (--compile)", net.meta["model"], functools.partial(predict, net, compiled=True)))
    if (grid := Path("models/operators/detail-enhance.ckpt")).exists():
        calls += [(f"{grid} (torch)", "bilateral-grid", functools.partial(predict, load_model(grid), backend="torch")),
                  ("cv2.detailEnhance (the operator)", "OpenCV", get_filter("detail-enhance"))]
    photos, rows = {mp: photo(mp) for mp in sizes}, []
    for (label, model, call), img in itertools.product(calls, photos.values()):
        mpx = img.shape[0] * img.shape[1] / 1e6
        mps = mpx / median_seconds(lambda: call(img), repeats)
        rows.append(dict(checkpoint=label, model=model, megapixels=round(mpx, 2), mps=mps))
        print(f"{label:<40} {mpx:5.2f} MP {mps:8.2f} MP/s", flush=True)
    return rows


def models_markdown(rows: list[dict], repeats: int) -> str:
    return ("\nEvery shipped checkpoint through `predict` (default backend; median of "
            f"{repeats} calls after a warm-up; the learned operators in `models/operators/` run the bilateral grid's "
            "numba runtime; torch's networks also through `--compile`, its compilation in the untimed warm-up), then "
            "the detail-enhance grid in its torch form and the operator itself:\n\n" + markdown_table(
                ["checkpoint", "model", "image", "MP/s"],
                [(f"`{r['checkpoint']}`" if r["checkpoint"].endswith(".ckpt") else r["checkpoint"], r["model"],
                  f"{r['megapixels']:g} MP", f"{r['mps']:.2f}") for r in rows],
                align="llrr"))


def markdown(rows: list[dict], info: dict) -> str:
    lines = [f"CPU inference, `python -m src.bench.speed` ({info['date']}): checkpoint `{info['checkpoint']}` "
             f"({info['model']}, filter {info['filter']}); {info['cores']} cores, OpenCV threads {info['threads']} (the "
             f"pipeline's and the fused runtime's steps run on them), torch threads {info['torch_threads']}; median of {info['repeats']} calls after a "
             f"warm-up, the runtimes called in turn (round robin), uint8 RGB in -> float32 out; load average at "
             f"the start {info['load'][0]:.2f} (shared machine). "
             f"Memory-bandwidth bound: copy bandwidth {info['bandwidth_gbs']:.1f} GB/s (np.copyto of {info['copy_mb']} MB on "
             f"{info['threads']} threads, read + write) / {BYTES_PER_PIXEL} bytes a pixel = {info['bound_mps']:.0f} MP/s; "
             f"each size also times a copy of its own {BYTES_PER_PIXEL} bytes a pixel beside the runtimes, and the "
             "'x copy' column is each runtime's MP/s over that copy's.",
             ""]
    lines.append(markdown_table(
        ["image", "runtime", "MP/s", "x OpenCV pipeline", "x copy of the same bytes", "max abs error vs torch", "note"],
        [(f"{r['megapixels']:g} MP", r["runtime"], f"{r['mps']:.1f}", f"{r['ratio']:.2f}", f"{r['copy_fraction']:.3f}",
          "" if r["max_abs_err"] is None else f"{r['max_abs_err']:.1e}", r["note"]) for r in rows], align="rlrrrrl"))
    if info.get("svd_split_errors"):
        lines += ["", "SVD split of the checkpoint's kernels (not used; the runtime stays exact): max abs error "
                  + ", ".join(f"rank {k}: {v:.1e}" for k, v in info["svd_split_errors"].items())
                  + " on the smallest photo."]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m src.bench.speed", description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="models/sobel.ckpt")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--sizes", type=float, nargs="+", default=[1.0, 4.0, 24.0], help="megapixels")
    ap.add_argument("--no-compile", action="store_true", help="leave out the torch.compile row (~1 min to compile)")
    ap.add_argument("--out", default="figures/bench", help="writes OUT.md and OUT.csv")
    ap.add_argument("--no-models", dest="models", action="store_false",
                    help="leave out the table of every shipped checkpoint's MP/s (sizes up to 4 MP)")
    ap.add_argument("--copy-mb", type=int, default=256, help="size of the copy that measures the bandwidth bound")
    args = ap.parse_args(argv)
    if args.repeats < 1 or min(args.sizes) <= 0 or args.copy_mb < 1:
        raise UserError("--repeats, --sizes and --copy-mb must be positive")

    rows, info = measure(args.checkpoint, args.sizes, args.repeats, not args.no_compile, args.copy_mb)
    md = markdown(rows, info)
    if args.models:
        model_repeats = min(5, args.repeats)
        md += models_markdown(shipped_models([s for s in args.sizes if s <= 4], model_repeats), model_repeats)
    out = Path(args.out)
    atomic_write_bytes(out.with_name(out.name + ".md"), md.encode())
    write_csv(out.with_name(out.name + ".csv"), rows)
    print()
    print(md, end="")
    print()
    layer_table(photo(1.0), args.repeats)
    return 0


def layer_table(img: np.ndarray, repeats: int) -> None:
    """Why the OpenCV runtime: one 5x5 convolution of a gray megapixel into 2 channels, each way."""
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
