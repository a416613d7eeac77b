"""Inference at native resolution, whole or tiled, and the ``predict`` command.

    python -m src.inference.predict --checkpoint models/sobel.ckpt --input photo.jpg --output out/ [--tile 512]
    python -m src.inference.predict --checkpoint C --input photos/ --output out/ [--jobs 4] [--overwrite]

A folder goes through the batch tool, :func:`src.inference.folder.predict_folder` (resumable, parallel I/O).
"""
from __future__ import annotations

import argparse
import itertools
import sys
import types
from collections import Counter
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn

from src.cli import run_cli
from src.errors import NonFiniteOutput, UserError
from src.inference.folder import predict_folder
from src.inference.grid_runtime import grid_features, grid_runner, grid_slicer
from src.inference.runtime import compiled_copy, cuda_runner, fused_runner, numba_runner
from src.io.files import check_writable
from src.io.images import ALPHA_BACKGROUNDS, IMAGE_SUFFIXES, MAX_PIXELS, list_images, to_rgb_uint8
from src.models.checkpoint import check_device, load_model
from src.models.layers import run_any_size

BACKENDS = ("auto", "torch", "numba", "opencv")


def _tile_runner(net: nn.Module, backend: str, compiled: bool = False):
    """``f(rgb uint8 (h, w, 3)) -> float32 (C, h, w)`` for the chosen backend; ``compiled``: torch's networks
    through ``torch.compile`` (the compact net and the bilateral grid run their own compiled kernels anyway)."""
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; expected one of {BACKENDS}")
    # a converted int8 module may hold no parameters at all, only buffers (or nothing: then the CPU)
    first = next(itertools.chain(net.parameters(), net.buffers()), None)
    device = first.device if first is not None else torch.device("cpu")
    # The compact net's fused runtimes on the CPU: the one-pass numba kernel (auto's choice: 1.7-2.2x the OpenCV
    # bands in make bench), else OpenCV row bands; on CUDA one compiled kernel (auto only).
    fast = None
    if device.type == "cpu" and backend in ("auto", "numba"):
        fast = numba_runner(net)
    if fast is None and device.type == "cpu" and backend in ("auto", "numba"):
        fast = grid_runner(net)  # the bilateral grid: its per-pixel slice in numba
    if fast is None and device.type == "cpu" and backend in ("auto", "opencv"):
        fast = fused_runner(net)
    elif backend == "auto" and device.type == "cuda":
        fast = cuda_runner(net)
    if fast is not None:
        return fast
    if backend in ("opencv", "numba"):
        need = " and needs the numba package" if backend == "numba" else ""
        raise UserError(f"the {backend} backend runs CompactNet on the CPU only{need}, not {type(net).__name__} on {device}")

    # Wide convolutions (the CAN) run ~1.5-2x faster on the CPU in channels-last layout (oneDNN's native
    # one); a channels-last input is enough, and the network's own tensors stay untouched.
    channels_last = device.type == "cpu" and getattr(net, "prefers_channels_last", False)
    model = compiled_copy(net) if compiled else net

    def run(rgb: np.ndarray) -> np.ndarray:
        nonlocal model
        x = _to_batch(rgb, device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        try:
            y = run_any_size(model, x)
        except Exception as exc:  # torch.compile fails at the first call (no C compiler, an unsupported op)
            if model is net:
                raise
            print(f"note: torch.compile failed, running eager ({str(exc).strip().splitlines()[0][:200]})")
            model = net
            y = run_any_size(net, x)
        return y[0].float().cpu().numpy()

    return run


@torch.inference_mode()
def predict(net: nn.Module, rgb: np.ndarray, tile: int | None = None, backend: str = "auto",
            compiled: bool = False, out: np.ndarray | None = None) -> np.ndarray:
    """Run ``net`` on one image at native resolution.

    ``rgb``: ``(H, W, 3)`` uint8 (gray, RGBA and 16-bit arrays are converted), any ``H, W >= 1``.
    Returns float32 ``(H, W)`` (or ``(H, W, C)`` for multi-channel filters) in [0, 1], same size.
    With ``tile=N`` the image goes through in ``N x N`` tiles, each with a halo of the network's
    receptive radius, so the result equals the whole-image one while the working memory is bounded by
    the tile; networks with ``blend_tiles`` (the U-Net, whose output depends on the whole input) get
    overlapping tiles cross-faded by :func:`blended_bands` instead (close to, not equal to, the whole
    image). :func:`predict_bands` gives the same result band by band, for output that never exists whole.
    ``compiled``: a torch network (the CAN, the U-Net, the autoencoder) through ``torch.compile`` (dynamic
    sizes, kept for the next call): 3.1-3.5x for the CAN in `make bench` after a first call of ~20 s (~4 s warm).
    ``out``: a C-contiguous float32 array of the result's shape to write into and return, e.g. one array reused
    for every frame of a video, or a memory-mapped file: the fused CPU runtimes (the compact net's, the grid's)
    write the whole image straight into it, so no output memory is allocated (a fresh array's pages are zeroed
    by the OS on first touch: a fifth of the default net's time at 24 MP in `make bench`, 983 against 1,230 MP/s);
    else it is filled band by band.

    >>> from src.models import exact_sobel_net
    >>> predict(exact_sobel_net(), np.zeros((7, 9, 3), np.uint8)).shape
    (7, 9)
    >>> frame = np.empty((7, 9), np.float32)
    >>> predict(exact_sobel_net(), np.zeros((7, 9, 3), np.uint8), out=frame) is frame
    True
    """
    if out is not None and (not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.ndim not in (2, 3)
                            or out.shape[:2] != np.shape(rgb)[:2] or not out.flags.c_contiguous
                            or not out.flags.writeable):
        raise UserError(f"out must be a writeable, C-contiguous float32 array of shape {tuple(np.shape(rgb)[:2])} "
                        f"or {tuple(np.shape(rgb)[:2])} + (channels,), got {_describe(out)}")
    channels = getattr(net, "out_channels", None)  # known up front for most networks: refuse before any work
    expected = None if out is None or not channels else out.shape[:2] + ((channels,) if channels > 1 else ())
    if expected is not None and out.shape != expected:
        raise UserError(f"out has shape {out.shape}, the result is {expected}")
    result = out
    for y0, band in predict_bands(net, rgb, tile, backend, compiled, out):
        if band is out:
            return out  # written in place by the runtime
        if out is None and y0 == 0 and band.shape[0] == rgb.shape[0]:
            return band  # the whole image in one piece: no copy
        if result is None:
            result = np.empty((rgb.shape[0], *band.shape[1:]), np.float32)
        elif band.shape[1:] != result.shape[1:]:
            raise UserError(f"out has shape {out.shape}, the result is {(rgb.shape[0], *band.shape[1:])}")
        result[y0 : y0 + band.shape[0]] = band
    return result


def _describe(a: object) -> str:
    return f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__


@torch.inference_mode()
def predict_bands(net: nn.Module, rgb: np.ndarray, tile: int | None = None, backend: str = "auto",
                  compiled: bool = False, out: np.ndarray | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """:func:`predict`'s result as ``(y0, rows)`` from the top: float32 ``(h, W)`` or ``(h, W, C)`` bands, one
    per row of tiles (the whole image when ``tile`` is None or covers it), each checked finite and clipped.

    What the CLI streams to disk (:func:`src.io.images.write_png_bands`): the output of a 100 MP image
    never exists whole, only the input and a band of ``tile`` rows (plus a blend's overlap). ``out``
    (:func:`predict`'s, checked there): a runtime that can write the whole image into it does, and yields it.
    """
    rgb = to_rgb_uint8(rgb)
    if tile is not None and tile < 1:
        raise UserError(f"tile must be a positive number of pixels, got {tile}")
    run = _tile_runner(net, backend, compiled)
    H, W = rgb.shape[:2]
    if tile is None or (H <= tile and W <= tile):
        direct = _in_place(run, out)
        bands: Iterator[tuple[int, np.ndarray]] = iter([(0, run(rgb) if direct is None else run(rgb, out=direct))])
    elif getattr(net, "blend_tiles", False):
        bands = blended_bands(run, rgb, tile)
    elif getattr(net, "whole_image_context", False):
        bands = sliced_bands(net, rgb, tile, backend)
    else:
        bands = halo_bands(run, rgb, tile, getattr(net, "receptive_radius", None), type(net).__name__)
    for y0, band in bands:  # (C, h, W)
        if not getattr(run, "finite", False):  # the fused CPU runtimes prove it: from the weights, or the grid
            check_finite_output(band)
        if not getattr(run, "clamped", False):  # the fused runtimes clamp as they write
            band = np.clip(band, 0.0, 1.0, out=band)
        band = band[0] if band.shape[0] == 1 else np.ascontiguousarray(band.transpose(1, 2, 0))
        yield y0, out if out is not None and band.shape == out.shape and np.shares_memory(band, out) else band


def _in_place(run, out: np.ndarray | None) -> np.ndarray | None:
    """``out`` as the ``(C, H, W)`` or ``(H, W, C)`` view that ``run`` writes into, where it writes in place (the
    fused CPU runtimes, ``out_layout``) and the layouts agree; else None (``predict`` copies the result in)."""
    layout = getattr(run, "out_layout", None)
    if out is None or layout is None:
        return None
    if out.ndim == 2:
        return out[None] if layout == "chw" else out[:, :, None]
    return out if layout == "hwc" else None


def halo_bands(run, rgb: np.ndarray, tile: int, halo: int | None, name: str) -> Iterator[tuple[int, np.ndarray]]:
    """Tiles cut with a halo of the receptive radius: each row of tiles equals those rows of the whole image.
    A runner that bands its own work (``whole_rows``: the compact net's numba pass) takes each row of tiles
    whole, up to 16 tiles wide: its input rows are a view and its output rows are the band, no copies."""
    if halo is None:
        raise UserError(f"{name} does not state its receptive_radius; tiled prediction needs it")
    H, W = rgb.shape[:2]
    whole_rows = getattr(run, "whole_rows", False) and W <= 16 * tile
    for y0 in range(0, H, tile):
        y1, band = min(y0 + tile, H), None
        ya, yb = max(0, y0 - halo), min(H, y1 + halo)
        if whole_rows:
            yield y0, run(np.ascontiguousarray(rgb[ya:yb]))[:, y0 - ya : y1 - ya]
            continue
        for x0 in range(0, W, tile):
            x1 = min(x0 + tile, W)
            xa, xb = max(0, x0 - halo), min(W, x1 + halo)
            res = run(np.ascontiguousarray(rgb[ya:yb, xa:xb]))
            if band is None:
                band = np.empty((res.shape[0], y1 - y0, W), np.float32)
            band[:, :, x0:x1] = res[:, y0 - ya : y1 - ya, x0 - xa : x1 - xa]
        yield y0, band


def check_finite_output(out: np.ndarray) -> None:
    """Raise :class:`NonFiniteOutput` if ``out`` holds a NaN or an infinity (never written, never scored)."""
    finite = np.isfinite(out)
    if not finite.all():
        bad = out.size - int(np.count_nonzero(finite))
        raise NonFiniteOutput(f"the network's output holds {bad:,} NaN or infinite value(s) of {out.size:,}: "
                              "its weights produce no valid image (nothing written)")


def _window(n: int, overlap: int, ramp_in: bool, ramp_out: bool) -> np.ndarray:
    """1-D tile weight: sin^2 ramps over ``overlap`` pixels on the sides shared with a neighbour, so two
    neighbours' weights sum to 1 across their overlap."""
    w = np.ones(n, np.float32)
    ramp = np.sin(0.5 * np.pi * (np.arange(overlap) + 0.5) / overlap).astype(np.float32) ** 2 if overlap else w[:0]
    if ramp_in:
        w[: len(ramp)] = ramp[:n]
    if ramp_out:
        w[n - len(ramp) :] = np.minimum(w[n - len(ramp) :], ramp[::-1][-n:])
    return w


def _starts(length: int, tile: int, step: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def sliced_bands(net: nn.Module, rgb: np.ndarray, tile: int, backend: str = "auto") -> Iterator[tuple[int, np.ndarray]]:
    """Networks whose context comes from the whole image at low resolution (the bilateral grid): the grid once
    from the whole image, then each ``tile x tile`` tile sliced from it, which equals the whole-image result."""
    device = next(net.parameters()).device
    slicer = grid_slicer(net) if backend in ("auto", "numba") else None
    grid = grid_features(net, rgb) if slicer is not None else net.grid_of(_to_batch(rgb, device))
    if slicer is not None:
        slicer.check_finite(grid)
    H, W = rgb.shape[:2]
    for y0 in range(0, H, tile):
        y1 = min(y0 + tile, H)
        band = np.empty((net.out_channels, y1 - y0, W), np.float32)
        for x0 in range(0, W, tile):
            x1 = min(x0 + tile, W)
            part = np.ascontiguousarray(rgb[y0:y1, x0:x1])
            if slicer is not None:
                band[:, :, x0:x1] = slicer(grid, part, (y0, x0), (H, W))
            else:
                band[:, :, x0:x1] = net.apply(grid, _to_batch(part, device), (y0, x0), (H, W))[0].float().cpu().numpy()
        yield y0, band


def blended_bands(run, rgb: np.ndarray, tile: int, overlap: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Overlapping ``tile x tile`` tiles (overlap ``tile // 4`` by default) blended with smooth weights.

    For networks whose output depends on the whole input (the Pix2Pix U-Net), where cutting tiles at a
    halo cannot reproduce the whole-image result: seams are cross-faded instead. ``run``: rgb -> (C, h, w).
    Rows are yielded once no later tile reaches them; only the rows still shared with the next row of
    tiles are kept.
    """
    H, W = rgb.shape[:2]
    overlap = tile // 4 if overlap is None else overlap
    ys = _starts(H, tile, tile - overlap)
    acc = weight = None  # sums for the rows [ys[i], ...) not yielded yet
    for i, y0 in enumerate(ys):
        y1, y_next = min(y0 + tile, H), (ys[i + 1] if i + 1 < len(ys) else H)
        wy = _window(y1 - y0, overlap, y0 > 0, y1 < H)
        for x0 in _starts(W, tile, tile - overlap):
            x1 = min(x0 + tile, W)
            res = run(np.ascontiguousarray(rgb[y0:y1, x0:x1]))
            w2 = wy[:, None] * _window(x1 - x0, overlap, x0 > 0, x1 < W)[None, :]
            if acc is None:  # every row of tiles is as tall as the first
                acc, weight = np.zeros((res.shape[0], y1 - y0, W), np.float32), np.zeros((y1 - y0, W), np.float32)
            acc[:, :, x0:x1] += res * w2
            weight[:, x0:x1] += w2
        done = y_next - y0
        yield y0, acc[:, :done] / np.maximum(weight[:done], 1e-12)
        keep = y1 - y_next  # rows the next row of tiles also covers
        acc2, weight2 = np.zeros_like(acc), np.zeros_like(weight)
        acc2[:, :keep], weight2[:keep] = acc[:, done : done + keep], weight[done : done + keep]
        acc, weight = acc2, weight2


def _to_batch(rgb: np.ndarray, device: torch.device) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(rgb)).to(device)
    return x.permute(2, 0, 1)[None].float().div_(255.0)


def output_names(paths: list[Path], src: Path, out_dir: Path) -> dict[Path, Path]:
    """Output PNG for each input: ``out/rel/x.png``; inputs that would share one (``x.png``, ``x.jpg``)
    keep their extension (``x.png.png``, ``x.jpg.png``). Refuses, listing them, names that still collide
    or an output that would replace one of the inputs."""
    rel = {p: (p.relative_to(src) if src.is_dir() else Path(p.name)) for p in paths}
    dest = {p: out_dir / r.with_suffix(".png") for p, r in rel.items()}
    groups: dict[Path, list[Path]] = {}
    for p, d in dest.items():
        groups.setdefault(d, []).append(p)
    for d, same in groups.items():
        if len(same) > 1:
            for p in same:
                dest[p] = out_dir / rel[p].with_name(rel[p].name + ".png")
            print(f"note: {', '.join(str(rel[p]) for p in same)} share the name {d.name}: each keeps its extension")
    counts = Counter(dest.values())
    if clash := sorted(str(d) for d, n in counts.items() if n > 1):
        raise UserError(f"output names collide ({', '.join(clash[:5])}); rename the inputs (nothing written)")
    inputs = {p.resolve() for p in paths}
    if overwrite := sorted(str(d) for d in dest.values() if d.resolve() in inputs):
        raise UserError(f"--output would overwrite input image(s) ({', '.join(overwrite[:5])}); choose another folder")
    return dest


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m src.inference.predict", description="Apply a trained filter network to images.")
    ap.add_argument("--checkpoint", required=True, help="a checkpoint written by training (models/*.ckpt)")
    ap.add_argument("--input", required=True, help="an image file or a folder of images (recursive)")
    ap.add_argument("--output", required=True, help="folder for the predictions (PNG, same size as the input)")
    ap.add_argument("--tile", type=int, default=None,
                    help="process in N x N tiles, the PNG written band by band as they come (bounded memory, same result)")
    ap.add_argument("--max-mp", type=float, default=MAX_PIXELS / 1e6,
                    help="refuse inputs over this many megapixels (a guard against decompression bombs; default %(default)g)")
    ap.add_argument("--png16", action="store_true", help="write 16-bit PNGs instead of 8-bit")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    ap.add_argument("--backend", default="auto", choices=BACKENDS, help="auto: the compact net's one-pass numba kernel on CPU (opencv: its OpenCV row bands)")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the network (CAN, U-Net, autoencoder): 3.1-3.5x for the CAN (make bench) after a first call "
                         "of ~20 s (~4 s once inductor's cache is warm); pays over many or large images")
    ap.add_argument("--alpha", default="white", choices=sorted(ALPHA_BACKGROUNDS),
                    help="background that transparent pixels are composited over (as a viewer shows them)")
    ap.add_argument("--jobs", type=int, default=1, help="threads decoding and encoding images beside the network")
    ap.add_argument("--overwrite", action="store_true",
                    help="redo outputs that already exist (default: complete ones are skipped, so a run resumes)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar (it shows only on a terminal)")
    args = ap.parse_args(argv)

    # everything that can be checked is checked before the first image: device, output folder, names
    check_device(args.device)
    if args.tile is not None and args.tile < 1:
        raise UserError(f"--tile must be a positive number of pixels, got {args.tile}")
    if not args.max_mp > 0:
        raise UserError(f"--max-mp must be a positive number of megapixels, got {args.max_mp:g}")
    net = load_model(args.checkpoint, device=args.device)
    src = Path(args.input)
    paths, _ = list_images(src)
    if not paths:
        raise UserError(f"{src}: no image files found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    out_dir = Path(args.output)
    dests = output_names(paths, src, out_dir)
    check_writable(out_dir)
    stream = args.tile is not None  # tiles: each band deflated into the PNG as it comes, never the whole output
    run = (lambda n, rgb: predict_bands(n, rgb, tile=args.tile, backend=args.backend, compiled=args.compile)) \
        if stream else (lambda n, rgb: predict(n, rgb, backend=args.backend, compiled=args.compile))
    report = predict_folder(net, dests, run=run, alpha=args.alpha, bits=16 if args.png16 else 8, jobs=args.jobs,
                            overwrite=args.overwrite, progress=not args.no_progress, stream=stream,
                            max_pixels=int(args.max_mp * 1e6))
    failures = len(report.failed)
    print(report.summary())
    if failures == len(paths):
        raise UserError(f"no image could be processed ({failures} failed)")
    return 1 if failures else 0


class _CallableModule(types.ModuleType):
    """This module, callable as :func:`predict`: ``from src.inference import predict`` finds the module once it is
    loaded (the import system sets the package attribute), and ``predict(net, rgb)`` must work either way."""
    def __call__(self, *args, **kwargs):
        return predict(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    run_cli(main)
