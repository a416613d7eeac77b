"""Apply a network to a folder of images: the batch tool behind ``python -m src.inference.predict``.

    python -m src.inference.predict --checkpoint C --input photos/ --output out/ [--jobs 4] [--overwrite]

Subfolders and names are kept (``photos/a/x.jpg`` -> ``out/a/x.png``). A file that cannot be read is
skipped with one line saying why and counted in the summary. Outputs that already exist and are
complete (a whole PNG of the input's size) are skipped, so an interrupted run continues where it
stopped; ``overwrite=True`` redoes them. Every output is written atomically (temp file, then rename),
so a kill never leaves a half-written PNG under the final name. ``jobs`` threads decode the next
images and encode the finished ones while the network runs in the calling thread. The summary
ends with the throughput in images/s and MP/s (images processed, wall clock of the whole run).
"""
from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch.nn as nn
from PIL import Image
from tqdm import tqdm

from src.errors import TooManyPixels, UserError
from src.io.images import MAX_PIXELS, read_rgb, write_png, write_png_bands


@dataclass
class FolderReport:
    written: int = 0
    skipped_existing: int = 0
    failed: list[str] = field(default_factory=list)  # one line per unreadable file
    pixels: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        rate = self.written / self.seconds if self.seconds > 0 else 0.0
        mp_rate = self.pixels / 1e6 / self.seconds if self.seconds > 0 else 0.0
        return (f"done: {self.written} written, {self.skipped_existing} already done (skipped), "
                f"{len(self.failed)} unreadable (skipped) in {self.seconds:.1f} s: "
                f"{rate:.2f} images/s, {mp_rate:.2f} MP/s")


def header_size(path: Path) -> tuple[int, int] | None:
    """``(width, height)`` from an image file's header, or None if it cannot be read."""
    try:
        with Image.open(path) as im:
            return im.size
    except Exception:  # unreadable: the reader says why when the file is processed
        return None


def is_complete(output: Path, size: tuple[int, int] | None) -> bool:
    """True when ``output`` is a whole PNG (every chunk present, checksums right) of ``size``."""
    if size is None or not output.is_file():
        return False
    try:
        with Image.open(output) as im:
            if im.format != "PNG" or im.size != size:
                return False
            im.verify()  # walks every chunk to IEND: a truncated file fails here
        return True
    except Exception:
        return False


def _read(path: Path, alpha: str, max_pixels: int) -> tuple[np.ndarray | UserError, list[str]]:
    """The image and the reader's notes; an unreadable file's error is returned, for the caller to weigh."""
    notes: list[str] = []
    try:
        return read_rgb(path, max_pixels=max_pixels, alpha=alpha, notes=notes), notes
    except UserError as exc:
        if isinstance(exc, TooManyPixels):
            exc = TooManyPixels(f"{exc} (--max-mp raises it)")
        return exc, notes


def _read_ahead(pool: ThreadPoolExecutor, paths: list[Path], alpha: str, max_pixels: int,
                depth: int) -> Iterator[tuple[Path, Future]]:
    """``(path, its read in flight)`` in order, keeping up to ``depth`` reads queued on ``pool``."""
    ahead: deque[tuple[Path, Future]] = deque()
    queue = iter(paths)

    def refill() -> None:
        while len(ahead) < depth:
            p = next(queue, None)
            if p is None:
                return
            ahead.append((p, pool.submit(_read, p, alpha, max_pixels)))

    refill()
    while ahead:
        p, fut = ahead.popleft()
        refill()
        yield p, fut


def predict_folder(net: nn.Module, dests: dict[Path, Path], *, run: Callable[[nn.Module, np.ndarray], np.ndarray],
                   alpha: str = "white", bits: int = 8, jobs: int = 1, overwrite: bool = False,
                   log: Callable[[str], None] = print, progress: bool = True, stream: bool = False,
                   max_pixels: int = MAX_PIXELS) -> FolderReport:
    """Predict every input of ``dests`` (input path -> output PNG path) with ``run(net, rgb)``.

    ``stream``: ``run`` returns ``(y0, rows)`` bands (:func:`src.inference.predict.predict_bands`), each
    deflated into the PNG as it comes, so an output never exists whole in memory (a 100 MP image in tiles).

    A single unreadable input, when it is the only one, raises its :class:`UserError` (its reason is the
    error); otherwise unreadable inputs are logged as ``skipped: <reason>`` and counted.
    """
    if jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {jobs}")

    report = FolderReport()
    todo = []
    for p, d in dests.items():
        if not overwrite and is_complete(d, header_size(p)):
            report.skipped_existing += 1
        else:
            todo.append(p)
    if report.skipped_existing:
        log(f"note: {report.skipped_existing} output(s) already complete, skipped (--overwrite redoes them)")
    t0 = time.perf_counter()
    bar = tqdm(total=len(todo), unit="img", disable=None if progress else True, leave=False)  # None: on a terminal
    say = log if bar.disable else bar.write
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        writes: list[Future] = []
        for p, fut in _read_ahead(pool, todo, alpha, max_pixels, jobs + 1):
            rgb, notes = fut.result()
            if isinstance(rgb, UserError):
                if len(dests) == 1:
                    raise rgb  # the one file asked for: its reason is the error
                report.failed.append(str(rgb))
                say(f"skipped: {rgb}")
                bar.update()
                continue
            for note in notes:
                say(f"note: {p}: {note}")
            pred = run(net, rgb)  # NaN/Inf output: UserError, nothing written for it
            if stream:
                write_png_bands(dests[p], rgb.shape[0], (band for _, band in pred), bits)
            else:
                writes.append(pool.submit(write_png, dests[p], pred, bits))
            report.pixels += rgb.shape[0] * rgb.shape[1]
            report.written += 1
            say(f"{p} -> {dests[p]}  ({rgb.shape[1]}x{rgb.shape[0]})")
            bar.update()
            while writes and (writes[0].done() or len(writes) > 2 * jobs):  # bounded: finished images waiting
                writes.pop(0).result()  # an encoding or disk error surfaces here
        for w in writes:
            w.result()
    bar.close()
    report.seconds = time.perf_counter() - t0
    return report
