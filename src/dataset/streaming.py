"""Images read by path and decoded on access, inside the loader workers: data of any size in bounded memory.

A split is a list of :class:`ImageFile` (path, shape from the file header, optional stored target).
:class:`LazyImages` serves them as ``NamedImage`` on access, from an in-memory cache when the split's
decoded size fits the ``--cache-mb`` budget (small data stays as fast as a list of arrays), else from
disk each time. Peak memory is then the loader's: workers x prefetch x batch crops and one decoded image
per worker, whatever the size of the data set.

A file deleted or truncated while training runs is skipped with one warning line and counted
(:class:`Skips`); the crop takes its next draw from the same seeded stream, so training continues.
"""
from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, DistributedSampler, Sampler
from torch.utils.data.dataloader import default_collate

from src.dataset.crops import crop_rng, cut, pad_to, random_window, target_tensor, to_tensor
from src.dataset.sources import load_split
from src.download.catalog import folder_dataset, parse_data_spec
from src.download.download import read_json
from src.download.prepare import (VERSION, filter_probe, folder_targets, interim_folder, prepare_interim,
                                  processed_folder, read_target)
from src.errors import UserError
from src.filters import Filter
from src.io.images import MAX_PIXELS, NamedImage, list_images, read_rgb
from src.io.splits import assign_splits

JPEG_SUFFIXES = {".jpg", ".jpeg"}
MAX_DRAWS = 100  # draws of one crop before a mostly-unreadable folder is an error
DEFAULT_CACHE_CAP_MB = 1024


@dataclass(frozen=True)
class ImageFile:
    name: str
    path: str
    shape: tuple[int, int]  # (H, W) as decoded, EXIF orientation applied
    target: str | None = None  # a stored target (data/processed) of the same image


def header_shape(path: str | os.PathLike) -> tuple[int, int]:
    """``(H, W)`` of an image file from its header, as :func:`decode` will return it; UserError if unreadable."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1) if im.format in ("JPEG", "TIFF", "WEBP", "PNG") else 1
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"{path}: not a readable image ({exc})") from None
    if w * h > MAX_PIXELS:
        raise UserError(f"{path}: {w}x{h} = {w * h / 1e6:.1f} MP is over the {MAX_PIXELS / 1e6:.0f} MP limit")
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def decode(path: str | os.PathLike) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)`` of an image file: OpenCV for JPEG (a third faster than Pillow, the same
    pixels, EXIF orientation applied), :func:`~src.io.images.read_rgb` for every other format."""
    if Path(path).suffix.lower() in JPEG_SUFFIXES:

        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is not None:
            return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    rgb = read_rgb(path)
    return rgb if rgb.flags.writeable else rgb.copy()  # torch.from_numpy warns on read-only arrays


def scan(named_paths: Sequence[tuple[str, Path]], targets: dict[str, Path] | None = None,
         workers: int = 4) -> tuple[list[ImageFile], list[str]]:
    """Headers of ``(name, path)`` pairs (no decoding): the files, and a reason for each unreadable one."""
    def one(item: tuple[str, Path]) -> ImageFile | str:
        name, path = item
        try:
            target = targets.get(name) if targets is not None else None
            return ImageFile(name, str(path), header_shape(path), None if target is None else str(target))
        except UserError as exc:
            return str(exc)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = list(pool.map(one, named_paths))
    return [r for r in results if isinstance(r, ImageFile)], [r for r in results if isinstance(r, str)]


def decoded_mb(files: Sequence[ImageFile]) -> float:
    """Memory of the decoded split: RGB bytes, plus float32 targets when stored ones are read."""
    per_pixel = [3 + (12 if f.target else 0) for f in files]
    return sum(f.shape[0] * f.shape[1] * b for f, b in zip(files, per_pixel)) / 2**20


def default_cache_mb() -> int:
    """A quarter of the memory available now, at most 1 GB: caching never pushes a run toward swapping."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return min(DEFAULT_CACHE_CAP_MB, int(line.split()[1]) // 1024 // 4)
    except OSError:
        pass
    return 256


class Skips:
    """Files that became unreadable: one warning line each (per loader process), counted across processes."""
    def __init__(self):
        self.count = multiprocessing.get_context().Value("i", 0)  # shared with forked/spawned loader workers
        self.seen: set[str] = set()

    def add(self, path: str, reason: str) -> None:
        if path in self.seen:
            return
        self.seen.add(path)
        with self.count.get_lock():
            self.count.value += 1
            n = self.count.value
        print(f"warning: {reason}; skipped, training continues ({n} unreadable so far)", file=sys.stderr, flush=True)

    @property
    def total(self) -> int:
        return int(self.count.value)


class LazyImages(Sequence):
    """A split's images as ``NamedImage``, decoded on access (or from the cache when :meth:`fill_cache` ran).

    Indexing raises :class:`UserError` for a file that became unreadable; iterating skips it (one warning
    line, counted in ``skips``), so evaluation over a shrinking folder still finishes.
    """

    def __init__(self, files: list[ImageFile], skips: Skips | None = None, cache: dict | None = None):
        self.files, self.skips = files, skips or Skips()
        self.cache: dict[str, tuple[np.ndarray, np.ndarray | None]] = cache if cache is not None else {}
        self.shapes = [f.shape for f in files]

    def __len__(self) -> int:
        return len(self.files)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        """RGB uint8 and the stored target (float32, or None) of image ``index``; UserError if unreadable."""
        f = self.files[index]
        if f.path in self.cache:
            return self.cache[f.path]
        rgb = decode(f.path)
        if rgb.shape[:2] != f.shape:
            raise UserError(f"{f.path}: changed on disk ({rgb.shape[1]}x{rgb.shape[0]}, was {f.shape[1]}x{f.shape[0]})")
        target = None
        if f.target is not None:

            target = read_target(f.target)
            if target.shape[:2] != f.shape:
                raise UserError(f"{f.target}: target size differs from its input")
        return rgb, target

    def try_read(self, index: int) -> tuple[np.ndarray, np.ndarray | None] | None:
        try:
            return self.read(index)
        except UserError as exc:
            self.skips.add(self.files[index].path, str(exc))
            return None

    def __getitem__(self, index: int) -> NamedImage:
        return NamedImage(self.files[index].name, self.read(index)[0])

    def __iter__(self) -> Iterator[NamedImage]:
        for i, f in enumerate(self.files):
            pair = self.try_read(i)
            if pair is not None:
                yield NamedImage(f.name, pair[0])

    def fill_cache(self, workers: int = 4) -> None:
        """Decode every image now, in a thread pool; unreadable ones are dropped from the split."""
        with ThreadPoolExecutor(max(1, workers)) as pool:
            pairs = list(pool.map(self.try_read, range(len(self.files))))
        kept = [(f, p) for f, p in zip(self.files, pairs) if p is not None]
        self.files, self.shapes = [f for f, _ in kept], [f.shape for f, _ in kept]
        self.cache.update({f.path: p for f, p in kept})

    def shard(self, rank: int, world_size: int) -> "LazyImages":
        """This rank's share (every ``world_size``-th file), sharing the cache and the skip count."""
        return LazyImages(self.files[rank::world_size], self.skips, self.cache)


class StreamingCrops(Dataset):
    """:class:`~src.dataset.datamodule.RandomCrops` over :class:`LazyImages`: the same seeded windows per
    ``(seed, index)``, the image decoded when the item is asked for. A stored target is cut at the same
    window; else the loader computes it (``filter``) or the model does (on device)."""
    def __init__(self, images: LazyImages, crop: int, length: int, filter: Filter | None = None, seed: int = 0):
        if not len(images):
            raise ValueError("no training images")
        self.images, self.crop, self.length, self.filter, self.seed = images, crop, length, filter, seed
        self.shapes = [(max(h, crop), max(w, crop)) for h, w in images.shapes]
        areas = np.array([h * w for h, w in self.shapes], np.float64)
        self.weights = areas / areas.sum()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = crop_rng(self.seed, index)
        for _ in range(MAX_DRAWS):  # an unreadable file: the next draw of the same stream
            i, y0, x0, fx, fy = random_window(rng, self.weights, self.shapes, self.crop)
            pair = self.images.try_read(i)
            if pair is None:
                continue
            rgb, target = pair
            patch = cut(pad_to(rgb, self.crop), y0, x0, self.crop, fx, fy)
            item = {"input": to_tensor(patch)}
            if target is not None:
                t = cut(pad_to(target, self.crop), y0, x0, self.crop, fx, fy)
                item["target"] = torch.from_numpy(t[None] if t.ndim == 2 else t.transpose(2, 0, 1).copy())
            elif self.filter is not None:
                item["target"] = target_tensor(self.filter, patch)
            return item
        raise UserError(f"{MAX_DRAWS} draws in a row hit unreadable images: the training folder is mostly gone")


class StreamingWholeImages(Dataset):
    """Whole images for validation and test; ``None`` for a file that became unreadable (see :func:`collate_present`)."""

    def __init__(self, images: LazyImages, filter: Filter | None = None):
        self.images, self.filter = images, filter

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict | None:
        pair = self.images.try_read(index)
        if pair is None:
            return None
        rgb, target = pair
        item = {"input": to_tensor(rgb), "name": self.images.files[index].name}
        if target is not None:
            item["target"] = torch.from_numpy(target[None] if target.ndim == 2 else target.transpose(2, 0, 1).copy())
        elif self.filter is not None:
            item["target"] = target_tensor(self.filter, rgb)
        return item


def collate_present(items: list) -> dict | None:
    """The default collate over the items that could be read; ``None`` when none could (the step skips it)."""
    items = [it for it in items if it is not None]
    return default_collate(items) if items else None


class RankShard(DistributedSampler):
    """Every ``world_size``-th index of ``inner`` from ``rank``, without padding, so each validation image
    is seen once and each training crop by one rank. A ``DistributedSampler``, so Lightning keeps it."""
    def __init__(self, inner: Sampler[int] | Sequence[int], rank: int, world_size: int):  # noqa: super() needs a process group
        self.inner, self.rank, self.num_replicas, self.epoch = inner, rank, world_size, 0

    def __len__(self) -> int:
        return len(range(self.rank, len(self.inner), self.num_replicas))

    def __iter__(self) -> Iterator[int]:
        return iter(list(self.inner)[self.rank :: self.num_replicas])


def processed_targets(ds, size: str, filter: Filter, root: Path | None = None) -> tuple[Path | None, str]:
    """The ``data/processed`` folder of ``filter`` when its manifest matches what is asked, and a line saying
    where the targets come from (or why a folder there is ignored)."""
    folder = processed_folder(ds, size, filter, root)
    if not (folder / "manifest.json").exists():
        params = "".join(f" --filter-param {k}={v}" for k, v in filter.params.items())
        return None, (f"targets: computed on the fly (no {folder}; `python -m src.download.prepare {ds.name} --size {size} "
                      f"--filter {filter.name}{params}` stores them)")
    manifest, interim = read_json(folder / "manifest.json"), read_json(interim_folder(ds, size, root) / "manifest.json")
    config = manifest.get("config") or {}
    why = next((reason for bad, reason in (
        (not manifest.get("complete"), "incomplete (an interrupted prepare; run it again to finish)"),
        (config.get("version") != VERSION, f"format version {config.get('version')}, this code reads {VERSION}"),
        (config.get("filter") != filter.key, f"written for filter {config.get('filter')!r}, not {filter.key!r}"),
        (config.get("probe") != filter_probe(filter), "the filter's output has changed since it was written"),
        (config.get("interim") != interim.get("config"), "written from other inputs than data/interim holds now"),
    ) if bad), None)
    if why:
        return None, f"targets: computed on the fly; {folder} ignored: {why}"
    return folder, f"targets: read from {folder} (prepared, not recomputed)"


def split_sources(data: str, split: str, filter: Filter | None) -> tuple[list[tuple[str, Path]], dict[str, Path] | None, str]:
    """``(name, path)`` of a split's images, their stored targets by name (or None) and the targets line."""
    parsed = parse_data_spec(data)
    if parsed is None:
        named = folder_dataset(data)  # photos: the split is the folder data/raw/photos/SPLIT
        root = named / split if named else Path(data)
        paths = [] if not root.is_dir() else list_images(root)[0] if named else \
            assign_splits(list_images(root)[0], lambda p: str(p.relative_to(root)))[split]
        if not paths:
            load_split(data, split)  # raises the one-line reason (missing folder, no images, too few)
        named_paths = [(str(p.relative_to(root)), p) for p in paths]
        if named and filter is not None and filter.torch_fn is None and filter.out_channels in (1, 3):
            targets, folder = folder_targets(data, split, named_paths, filter)  # the operators: once per photo
            return named_paths, {n: str(t) for n, t in targets.items()}, f"targets: stored in {folder.parent}"
        return named_paths, None, "targets: computed on the fly (a folder)"

    ds, size = parsed
    prepare_interim(ds, size)
    folder, line = processed_targets(ds, size, filter) if filter is not None else (None, "")
    if folder is not None:
        targets = {p.stem: p for p in sorted((folder / split / "target").glob("*.png"))}
        return [(name, folder / split / "input" / p.name) for name, p in targets.items()], targets, line
    paths = sorted((interim_folder(ds, size) / split).glob("*.png"))
    if not paths:
        raise UserError(f"--data {data}: no images in the {split} split")
    return [(p.stem, p) for p in paths], None, line


def open_splits(data: str, filter: Filter | None, cache_mb: float, splits: Sequence[str] = ("train", "val", "test"),
                say=print) -> dict[str, LazyImages]:
    """Every split of ``data`` (a folder or ``NAME[:SIZE]``) as :class:`LazyImages`: headers read now, pixels
    on access. Train and val are cached in memory when together they fit ``cache_mb``, else both are streamed
    (a cached val beside a streamed train would save little time and cost its memory in every loader
    worker's share); the test split, read once at the end, never is."""
    if not cache_mb >= 0:
        raise UserError(f"--cache-mb must be 0 or more, got {cache_mb:g}")
    out, skips, targets_line = {}, Skips(), ""
    for split in splits:
        named, targets, targets_line = split_sources(data, split, filter)
        files, bad = scan(named, targets)
        if not files:
            raise UserError(f"--data {data}: none of the images of the {split} split could be read ({bad[0]})")
        if bad:
            say(f"warning: {split}: skipped {len(bad)} unreadable image file(s) (first: {bad[0]})")
        out[split] = LazyImages(files, skips)
    cached = [s for s in out if s != "test"]
    if sum(decoded_mb(out[s].files) for s in cached) <= cache_mb:
        for s in cached:
            out[s].fill_cache()
    lines = [f"{len(im):,} {s} ({decoded_mb(im.files):,.1f} MB, {'cached' if im.cache else 'streamed'})"
             for s, im in out.items()]
    say(f"data: {data}: " + ", ".join(lines) + f" decoded; --cache-mb {cache_mb:,.0f}")
    if targets_line:
        say(targets_line)
    return out


def shard_line(images: list[NamedImage] | LazyImages, rank: int, world_size: int, total: int) -> str:
    """The start-up line of one DDP rank: which training images it crops from."""
    names = [im.name for im in images] if isinstance(images, list) else [f.name for f in images.files]
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    return f"data: rank {rank} of {world_size} crops from {len(names)} of {total} training images: {shown}"
