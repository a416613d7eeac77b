"""data/raw (immutable) -> data/interim (decoded, resized, split) -> data/processed (one filter's targets).

    python -m src.download.prepare cifar100 --size native --filter sobel [--filter-param ksize=5]

    data/interim/NAME/SIZE/{train,val,test}/IMAGE.png                8-bit RGB, the inputs
    data/processed/NAME/SIZE/FILTERKEY/{split}/input/IMAGE.png      hard link to the interim file
    data/processed/NAME/SIZE/FILTERKEY/{split}/target/IMAGE.png     16-bit target, [0, 1] scaled to 0..65535

FILTERKEY is the filter's name and parameters (``sobel``, ``sobel(ksize=5)``), so changed parameters never
reuse stale targets; each manifest.json also keeps a fingerprint of the filter's output on a fixed image,
so a changed implementation under the same key rebuilds too. A complete stage is a no-op; an interrupted
one resumes (every file is written under a temporary name and renamed). Images stream through a pool,
one batch at a time.

SIZE ``64`` or ``128``: the shorter side is resized to SIZE (area interpolation), then the centre is
cropped to SIZE x SIZE. Images already smaller are never upscaled (that would invent smooth edges): they
are cropped to at most SIZE per side and counted in the manifest. ``native`` keeps every pixel.

Training and evaluation take ``--data NAME[:SIZE]``: they read data/interim/NAME/SIZE, preparing it first
when it is missing (the download is never started implicitly: it can be gigabytes).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import re
import shutil
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from src.cli import parse_params, run_cli
from src.download.catalog import DATASETS, SIZES, DataSet, data_root, get_dataset, parse_data_spec
from src.download.download import downloaded_images, fingerprint, raw_folder, read_json, require_downloaded, write_json
from src.errors import UserError
from src.filters import Filter, get_filter
from src.io.files import atomic_write_bytes
from src.io.images import NamedImage, read_rgb, write_png
from src.io.splits import SPLITS, folder_split_of

VERSION = 1  # bump when the interim or processed format changes
BATCH = 256  # images in flight at once


@dataclass
class SourceImage:
    name: str
    split: str
    read: Callable[[], np.ndarray]  # RGB uint8; raises UserError when unreadable


def source_images(ds: DataSet, raw: Path) -> Iterator[SourceImage]:
    """Every image of a downloaded data set, with its split, decoded only when ``read()`` is called."""
    return {"cifar": _cifar_images, "pets": _pets_images, "coco-list": _coco_images}[ds.layout](ds, raw)


def _cifar_images(ds: DataSet, raw: Path) -> Iterator[SourceImage]:
    # The official files are single pickles (150 MB for train): the source format allows no smaller read.
    folder = raw / ds.resources[0].unpacks_to
    for official in ("train", "test"):
        try:
            with open(folder / official, "rb") as f:
                data = pickle.load(f, encoding="latin1")["data"]
        except (OSError, pickle.UnpicklingError, KeyError, EOFError) as exc:
            raise UserError(f"{folder / official}: not a CIFAR batch file ({exc})") from None
        images = np.asarray(data, np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        for i, rgb in enumerate(images):
            name = f"{official}-{i:05d}"
            split = "test" if official == "test" else folder_split_of(name, val_fraction=0.1, test_fraction=0.0)
            yield SourceImage(name, split, lambda rgb=rgb: np.ascontiguousarray(rgb))


def _pets_images(ds: DataSet, raw: Path) -> Iterator[SourceImage]:
    base = raw / Path(ds.resources[0].filename).parent
    for official in ("trainval", "test"):
        for line in (base / "annotations" / f"{official}.txt").read_text().splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            name = line.split()[0]
            split = "test" if official == "test" else folder_split_of(name, val_fraction=0.1, test_fraction=0.0)
            yield SourceImage(name, split, lambda p=base / "images" / f"{name}.jpg": read_rgb(p))


def _coco_images(ds: DataSet, raw: Path) -> Iterator[SourceImage]:
    for path in downloaded_images(raw):
        yield SourceImage(path.stem, folder_split_of(path.name), lambda p=path: read_rgb(p))


def fit_size(rgb: np.ndarray, size: str) -> np.ndarray:
    """Shorter side to ``size`` (never up), then centre-cropped to at most ``size`` x ``size``.

    >>> fit_size(np.zeros((300, 200, 3), np.uint8), "64").shape
    (64, 64, 3)
    >>> fit_size(np.zeros((32, 40, 3), np.uint8), "64").shape
    (32, 40, 3)
    """
    if size == "native":
        return rgb
    s = int(size)
    h, w = rgb.shape[:2]
    if min(h, w) > s:
        h, w = max(s, round(h * s / min(h, w))), max(s, round(w * s / min(h, w)))
        rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
    y0, x0 = (h - min(h, s)) // 2, (w - min(w, s)) // 2
    return rgb[y0 : y0 + min(h, s), x0 : x0 + min(w, s)]


def cache_key(filter: Filter) -> str:
    """The folder name for ``filter``'s targets: its key, made file-name safe (hash added if changed)."""
    safe = re.sub(r"[^A-Za-z0-9._=,()+-]", "_", filter.key)
    return safe if safe == filter.key else f"{safe}-{hashlib.sha1(filter.key.encode()).hexdigest()[:8]}"


def filter_probe(filter: Filter) -> str:
    """A fingerprint of the filter's output on a fixed odd-sized image (borders included)."""
    rgb = np.random.default_rng(0).integers(0, 256, (37, 29, 3), dtype=np.uint8)
    out = np.round(np.clip(filter(rgb), 0.0, 1.0) * 65535).astype("<u2")
    return hashlib.sha256(out.tobytes()).hexdigest()[:16]


def _done(out: Path, config: dict) -> dict | None:
    """The manifest of ``out`` when it is complete for ``config``."""
    manifest = read_json(out / "manifest.json")
    return manifest if manifest.get("complete") and manifest.get("config") == config else None


def _begin(out: Path, config: dict) -> None:
    """Clear output of another configuration (derived data: re-creatable), keep this one's, mark it started."""
    if read_json(out / "manifest.json").get("config") != config and out.exists():
        shutil.rmtree(out)
    write_json(out / "manifest.json", {"config": config, "complete": False})


def _batched(items: Iterable, n: int) -> Iterator[list]:
    it = iter(items)
    while batch := list(islice(it, n)):
        yield batch


def _stream(items: Iterable, work: Callable, workers: int, desc: str, total: int | None) -> list:
    """``work(item)`` for every item through a thread pool, one batch at a time (memory: one batch of images
    in flight, whatever the data set's size); the small results. Ends with one line: images and images/s."""
    results = []
    t0 = time.perf_counter()
    pool = ThreadPoolExecutor(max(1, workers))
    try:
        with tqdm(total=total, desc=desc, unit=" images", disable=None) as bar:
            for batch in _batched(items, BATCH):
                results.extend(pool.map(work, batch))
                bar.update(len(batch))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # on Ctrl-C, do not finish the batch first
    seconds = time.perf_counter() - t0
    print(f"{desc}: {len(results):,} images in {seconds:.1f} s ({len(results) / max(seconds, 1e-9):,.0f} images/s, "
          f"{max(1, workers)} threads)")
    return results


def default_workers() -> int:
    return min(8, os.cpu_count() or 1)


def interim_folder(ds: DataSet, size: str, root: Path | None = None) -> Path:
    return (root or data_root()) / "interim" / ds.name / size


def prepare_interim(ds: DataSet, size: str, root: Path | None = None, workers: int | None = None) -> dict:
    """Decode, resize and split the raw images into ``data/interim/NAME/SIZE``; returns its manifest."""
    if size not in SIZES:
        raise UserError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    root = root or data_root()
    raw, out = raw_folder(ds, root / "raw"), interim_folder(ds, size, root)
    config = {"version": VERSION, "dataset": ds.name, "size": size, "source": fingerprint(ds, raw)}
    if (manifest := _done(out, config)) is not None:
        return manifest
    elsewhere = read_json(out / "manifest.json")
    if not raw.exists() and elsewhere.get("complete") and elsewhere["config"]["version"] == VERSION:
        return elsewhere  # prepared on another machine; its data/raw was not copied here
    require_downloaded(ds, raw)
    _begin(out, config)

    def one(item: SourceImage) -> tuple[str, str]:
        dest = out / item.split / f"{item.name}.png"
        if dest.exists():  # written by an interrupted run

            with Image.open(dest) as im:
                small = size != "native" and min(im.size) < int(size)
            return item.split, "small" if small else "ok"
        try:
            rgb = fit_size(item.read(), size)
        except UserError as exc:
            return item.split, f"skipped: {exc}"
        write_png(dest, rgb.astype(np.float32) / 255.0)
        return item.split, "small" if size != "native" and min(rgb.shape[:2]) < int(size) else "ok"

    results = _stream(source_images(ds, raw), one, workers or default_workers(), f"{ds.name} {size}: interim",
                      ds.images)
    skipped = [status.removeprefix("skipped: ") for _, status in results if status.startswith("skipped")]
    counts = {s: sum(1 for split, status in results if split == s and not status.startswith("skipped")) for s in SPLITS}
    small = sum(1 for _, status in results if status == "small")
    if skipped:
        warnings.warn(f"{ds.name}: skipped {len(skipped)} unreadable image(s) (first: {skipped[0]})", stacklevel=2)
    if small:
        warnings.warn(f"{ds.name}: {small} image(s) smaller than {size} px kept at their size (never upscaled)",
                      stacklevel=2)
    manifest = {"config": config, "complete": True, "counts": counts, "skipped": len(skipped),
                "skipped_first": skipped[:20], "smaller_than_size": small}
    write_json(out / "manifest.json", manifest)
    return manifest


def processed_folder(ds: DataSet, size: str, filter: Filter, root: Path | None = None) -> Path:
    return (root or data_root()) / "processed" / ds.name / size / cache_key(filter)


def prepare_processed(ds: DataSet, size: str, filter: Filter, root: Path | None = None,
                      workers: int | None = None) -> dict:
    """Input/target pairs of ``filter`` in ``data/processed/NAME/SIZE/FILTERKEY``; returns its manifest."""
    if filter.out_channels not in (1, 3):
        raise UserError(f"filter {filter.key}: {filter.out_channels}-channel targets cannot be stored as PNG")
    root = root or data_root()
    interim = prepare_interim(ds, size, root, workers)
    out = processed_folder(ds, size, filter, root)
    config = {"version": VERSION, "interim": interim["config"], "filter": filter.key, "probe": filter_probe(filter)}
    if (manifest := _done(out, config)) is not None:
        return manifest
    _begin(out, config)
    src = interim_folder(ds, size, root)

    def one(path: Path) -> None:
        split = path.parent.name
        target, linked = out / split / "target" / path.name, out / split / "input" / path.name
        if not target.exists():
            write_png(target, filter(read_rgb(path)), bits=16)
        if not linked.exists():
            try:
                os.link(path, linked)  # no second copy of the inputs
            except OSError:
                atomic_write_bytes(linked, path.read_bytes())

    for split in SPLITS:
        (out / split / "input").mkdir(parents=True, exist_ok=True)
    paths = (p for split in SPLITS for p in sorted((src / split).glob("*.png")))
    total = sum(interim["counts"].values())
    _stream(paths, one, workers or default_workers(), f"{ds.name} {size}: {filter.key}", total)
    manifest = {"config": config, "complete": True, "counts": interim["counts"], "filter_params": filter.params}
    write_json(out / "manifest.json", manifest)
    return manifest


def folder_targets(name: str, split: str, named: Sequence[tuple[str, Path]], filter: Filter,
                   root: Path | None = None, workers: int | None = None) -> tuple[dict[str, Path], Path]:
    """Stored targets of a named folder data set (``photos``) for ``filter``: the filter run once on each whole
    image of ``split`` into ``data/processed/NAME/native/FILTERKEY/SPLIT/target/*.png`` (16-bit), resumable.

    For the operators with no torch twin (L0 smoothing at ~0.1-0.3 MP/s): computing them per crop would cost
    more than the training step; a crop is then cut from the whole image's target, as test images are scored.
    The manifest keys the folder to the filter (key and output probe) and the inputs (names, sizes, mtimes), so
    an edited photo or filter rebuilds. Returns ``{name: target path}`` and the folder.
    """
    out = (root or data_root()) / "processed" / name / "native" / cache_key(filter) / split
    listed = [[n, p.stat().st_size, p.stat().st_mtime_ns] for n, p in named]
    config = {"version": VERSION, "filter": filter.key, "probe": filter_probe(filter),
              "inputs": hashlib.sha256(repr(listed).encode()).hexdigest()[:16]}
    targets = {n: out / "target" / Path(n).with_suffix(".png") for n, _ in named}
    if _done(out, config) is None:
        _begin(out, config)

        def one(item: tuple[str, Path]) -> None:
            n, path = item
            if not targets[n].exists():
                targets[n].parent.mkdir(parents=True, exist_ok=True)
                write_png(targets[n], filter(read_rgb(path)), bits=16)

        _stream(named, one, workers or default_workers(), f"{name} {split}: {filter.key}", len(named))
        write_json(out / "manifest.json", {"config": config, "complete": True, "count": len(named)})
    return targets, out


def read_target(path: str | os.PathLike) -> np.ndarray:
    """A stored target PNG -> float32 ``(H, W)`` or ``(H, W, 3)`` in [0, 1]."""
    q = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if q is None:
        raise UserError(f"{path}: cannot read target")
    if q.ndim == 3:
        q = cv2.cvtColor(q, cv2.COLOR_BGR2RGB)
    return q.astype(np.float32) / np.float32(65535.0)


def iter_pairs(folder: Path, split: str) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(name, RGB uint8 input, float32 target) of one split of a processed folder, one at a time."""
    for target in sorted((folder / split / "target").glob("*.png")):
        yield target.stem, read_rgb(folder / split / "input" / target.name), read_target(target)


def load_prepared_split(spec: str, split: str, root: Path | None = None) -> list[NamedImage]:
    """``--data NAME[:SIZE]``: the inputs of ``split``, prepared on the fly when not yet on disk."""
    parsed = parse_data_spec(spec)
    if parsed is None:
        raise UserError(f"--data {spec}: not one of {', '.join(DATASETS)}")
    ds, size = parsed
    prepare_interim(ds, size, root)
    paths = sorted((interim_folder(ds, size, root) / split).glob("*.png"))
    if not paths:
        raise UserError(f"--data {spec}: no images in the {split} split")
    return [NamedImage(p.stem, read_rgb(p)) for p in paths]


def main(argv: Sequence[str] | None = None) -> int:
    splits = "\n".join(f"  {ds.name:<12} {ds.splits}" for ds in DATASETS.values())
    ap = argparse.ArgumentParser(prog="python -m src.download.prepare", description=__doc__,
                                 epilog=f"splits (deterministic):\n{splits}",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", choices=list(DATASETS), metavar="NAME", help=", ".join(DATASETS))
    defaults = ", ".join(f"{ds.name} {ds.default_size}" for ds in DATASETS.values())
    ap.add_argument("--size", choices=SIZES, default=None, help=f"default: {defaults}")
    ap.add_argument("--filter", default="sobel", help="whose targets to store; 'none' for inputs only")
    ap.add_argument("--filter-param", action="append", default=[], metavar="KEY=VALUE",
                    help="filter parameter, e.g. ksize=5 (part of the cache key)")
    ap.add_argument("--data-root", type=Path, default=None, help="holds raw/, interim/, processed/ (default: data)")
    ap.add_argument("--workers", type=int, default=default_workers())
    args = ap.parse_args(argv)
    ds = get_dataset(args.name)
    size = args.size or ds.default_size
    manifest = prepare_interim(ds, size, args.data_root, args.workers)
    counts = " / ".join(f"{manifest['counts'][s]} {s}" for s in SPLITS)
    print(f"{ds.name} {size}: {counts} images in {interim_folder(ds, size, args.data_root)}")
    if args.filter != "none":

        flt = get_filter(args.filter, **parse_params(args.filter_param, "--filter-param"))
        prepare_processed(ds, size, flt, args.data_root, args.workers)
        print(f"{ds.name} {size}: {flt.key} targets in {processed_folder(ds, size, flt, args.data_root)}")
    return 0


if __name__ == "__main__":
    run_cli(main)
