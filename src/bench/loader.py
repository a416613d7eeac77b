"""Training-loader throughput and memory on a folder of native 640x480 JPEGs (``make bench-loader``).

    python -m src.bench.loader [--images 5000] [--cache-images 1000] [--out figures/loader]

Generates ``--images`` synthetic photos (smooth colour fields with edges and grain, JPEG quality 90) into a
temporary folder, deleted at the end. Each loader row runs in a fresh process: the training loader of the
Sobel data module (128 x 128 crops, batches of 32; Sobel's targets are made on the model's device, so the
loader decodes and crops only) for 0, 1 and 2 workers, streamed (``--cache-mb 0``) and cached (the first
``--cache-images`` photos, which fit the budget). Then one real training run on the whole folder with the
default budget. Memory is the process tree's (the process and its loader workers): the sum of RSS, which
counts pages a forked worker shares with its parent once per process, and the sum of PSS, which splits them.
Writes ``OUT.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from src.cli import run_cli
from src.errors import UserError
from src.io.files import atomic_write_bytes, check_writable
from src.io.memory import measured

ROOT = Path(__file__).resolve().parents[2]


def synthetic_photo(rng: np.random.Generator, width: int = 640, height: int = 480) -> np.ndarray:
    """A photo-like RGB image: a smooth colour field, a few hard-edged shapes and sensor grain."""
    img = cv2.resize(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(6):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            cv2.circle(img, (x, y), int(rng.integers(10, 120)), colour, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(img, (x, y), (x + int(rng.integers(20, 200)), y + int(rng.integers(20, 200))), colour, -1)
    grain = rng.integers(-6, 7, (height, width, 1), dtype=np.int16)
    return np.clip(img.astype(np.int16) + grain, 0, 255).astype(np.uint8)


def synthetic_folder(folder: Path, n: int, seed: int = 0, workers: int = 2) -> list[Path]:
    """``n`` JPEGs ``img00000.jpg ...`` in ``folder`` (each a function of ``(seed, i)``)."""
    folder.mkdir(parents=True, exist_ok=True)

    def one(i: int) -> Path:
        path = folder / f"img{i:05d}.jpg"
        rgb = synthetic_photo(np.random.default_rng([seed, i]))
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        return path

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(n)))


def loader_row(folder: str, workers: int, cache_mb: float, batches: int, crop: int, batch_size: int) -> dict:
    """One loader configuration, measured in this process: start-up, first batch, then steady crops/s."""
    from src.dataset.datamodule import FilterDataModule  # start-up: Lightning only when called
    from src.filters import get_filter  # start-up: torch only when called

    t0 = time.perf_counter()
    data = FilterDataModule(get_filter("sobel"), data=folder, crop=crop, batch_size=batch_size,
                            steps_per_epoch=batches + 1, num_workers=workers, cache_mb=cache_mb)
    data.setup("fit")
    setup_s = time.perf_counter() - t0
    it = iter(data.train_dataloader())
    next(it)
    first_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    for _ in range(batches):
        next(it)
    steady_s = time.perf_counter() - t1
    train = data.splits["train"]
    return {"setup_s": setup_s, "first_batch_s": first_s, "crops_per_s": batches * batch_size / steady_s,
            "cached": bool(train.cache), "train_images": len(train)}


def decode_ms(paths: Sequence[Path], n: int = 40) -> float:
    """Median milliseconds to decode one file (one thread): what bounds a worker's images/s."""
    from src.dataset.streaming import decode  # start-up: torch only when called

    cv2.setNumThreads(1)
    times = []
    for p in paths[:n]:
        t0 = time.perf_counter()
        decode(p)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def markdown(rows: list[dict], train: dict, info: dict) -> str:
    lines = [
        f"# Training loader: {info['images']:,} native {info['size']} JPEGs",
        "",
        f"`{info['command']}` on {info['machine']}. {info['load']}",
        "",
        f"Crops {info['crop']}² in batches of {info['batch_size']}, Sobel (targets made on the model's device: the loader "
        f"decodes and crops). Streamed: one decode per crop, so images/s = crops/s; MB/s = JPEG bytes read from disk "
        f"(mean file {info['file_kb']:.0f} kB) and decoded bytes ({info['decoded_mb']:.2f} MB a photo). Cached: the first "
        f"{info['cache_images']:,} photos decoded up front (`--cache-mb` large enough), no decoding after. "
        f"Memory: peak over the process and its workers; RSS counts each forked worker's shared pages again, PSS splits them.",
        "",
        "| loader | workers | train images | start-up to first batch (s) | crops/s | images/s decoded | MB/s read | MB/s decoded | peak RSS (MB) | peak PSS (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        rate = r["crops_per_s"]
        decoded = (f"{rate:.0f}", f"{rate * info['file_kb'] / 1024:.1f}", f"{rate * info['decoded_mb']:.0f}")
        lines.append(
            f"| {'cached' if r['cached'] else 'streamed'} | {r['workers']} | {r['train_images']:,} | "
            f"{r['first_batch_s']:.1f} | {rate:.0f} | " + " | ".join(("-",) * 3 if r["cached"] else decoded) +
            f" | {r['peak_rss_mb']:,.0f} | {r['peak_pss_mb']:,.0f} |")
    lines += [
        "",
        f"One decode takes {info['decode_ms']:.1f} ms here (median, one thread, OpenCV), so a worker that only decodes "
        f"delivers at most ~{1000 / info['decode_ms']:.0f} crops/s on a core of its own: the loader is decode-bound. "
        f"Here the main process and all its workers share {info['cores']} core(s) (CPU affinity) with other jobs, so "
        "more workers add processes, not cores.",
        "",
        "## A training run on the whole folder",
        "",
        f"`{train['command']}`",
        "",
        "| a 1-step run, start to exit (s) | this run, start to exit (s) | steps | peak RSS (MB) | peak PSS (MB) |",
        "|---:|---:|---:|---:|---:|",
        f"| {train['first_s']:.1f} | {train['wall_s']:.0f} | {train['steps']} | {train['peak_rss_mb']:,.0f} | "
        f"{train['peak_pss_mb']:,.0f} |",
        "",
        f"Its start-up line: `{train['data_line']}`. The same command with `--max-steps 1`, from start to exit, bounds the "
        "time to the first training step from above (it includes the imports, the header scan, the workers' start, "
        "one validation and writing the checkpoint).",
        "",
        f"Decoded, the {info['images']:,} photos would take {info['images'] * info['decoded_mb']:,.0f} MB in memory "
        f"(the in-memory list before streaming). Targets: peak tree memory ≤ 2 GB, first step ≤ 30 s, ≥ 150 crops/s with 2 workers.",
        "",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class LoaderBench:
    """One ``make bench-loader`` run: the command line's options, typed."""
    images: int = 5000
    cache_images: int = 1000
    batches: int = 30
    crop: int = 128
    batch_size: int = 32
    train_steps: int = 40
    workers: tuple[int, ...] = (0, 1, 2)
    command: str = "python -m src.bench.loader"  # quoted by the report, so its numbers carry their command


def loader_rows(bench: LoaderBench, folder: Path, subset: Path) -> list[dict]:
    """Every loader row, streamed from ``folder`` then cached from ``subset``, each in a fresh process."""
    rows = []
    for cached in (False, True):
        for workers in bench.workers:
            spec = {"folder": str(subset if cached else folder), "workers": workers,
                    "cache_mb": 1e6 if cached else 0, "batches": bench.batches, "crop": bench.crop,
                    "batch_size": bench.batch_size}
            res = measured([sys.executable, "-m", "src.bench.loader", "--row", json.dumps(spec)], cwd=ROOT)
            line = next((ln for ln in res["output"].splitlines() if ln.startswith("ROW ")), None)
            if res["rc"] != 0 or line is None:
                raise UserError(f"loader row {spec} failed: {res['output'][-500:]}")
            row = {**json.loads(line[4:]), "workers": workers, "peak_rss_mb": res["peak_rss_mb"],
                   "peak_pss_mb": res["peak_pss_mb"]}
            rows.append(row)
            print(f"{'cached' if cached else 'streamed'} workers={workers}: {row['crops_per_s']:.0f} crops/s, "
                  f"first batch {row['first_batch_s']:.1f} s, peak RSS {row['peak_rss_mb']:.0f} MB, "
                  f"PSS {row['peak_pss_mb']:.0f} MB")
    return rows


def training_run(bench: LoaderBench, folder: Path, tmp: Path) -> dict:
    """The real training entry point on ``folder``: ``bench.train_steps`` steps, measured, and a 1-step run."""
    train_cmd = ["-m", "src.training.train", "--data", "FOLDER", "--crop", str(bench.crop),
                 "--batch-size", str(bench.batch_size), "--max-steps", str(bench.train_steps),
                 "--steps-per-epoch", str(max(1, bench.train_steps // 2)), "--num-workers", "2",
                 "--limit-val-batches", "20", "--no-test", "--logger", "none"]
    runs = {}
    for steps in (1, bench.train_steps):  # the whole 1-step run: an upper bound of the time to the first step
        cmd = [sys.executable, *train_cmd, "--output", str(tmp / "m.ckpt"), "--run-dir", str(tmp / "runs")]
        cmd[cmd.index("FOLDER")], cmd[cmd.index("--max-steps") + 1] = str(folder), str(steps)
        runs[steps] = measured(cmd, cwd=ROOT)
        if runs[steps]["rc"] != 0:
            raise UserError(f"training run failed: {runs[steps]['output'][-800:]}")
    res = runs[bench.train_steps]
    done = re.search(r'"steps": (\d+)', res["output"])
    train = {**res, "steps": int(done[1]) if done else None, "command": "python " + " ".join(train_cmd),
             "first_s": runs[1]["wall_s"],
             "data_line": next((ln for ln in res["output"].splitlines() if ln.startswith("data: ")), "")}
    print(f"training: a 1-step run takes {train['first_s']:.1f} s in all; {bench.train_steps} steps: peak RSS "
          f"{train['peak_rss_mb']:.0f} MB, PSS {train['peak_pss_mb']:.0f} MB")
    return train


def run(bench: LoaderBench) -> tuple[list[dict], dict, dict]:
    """``(loader rows, training run, the facts the report states)`` on synthetic photos in a temporary
    folder, deleted at the end."""
    with tempfile.TemporaryDirectory(prefix="loader-bench-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        paths = synthetic_folder(tmp / "all", bench.images)
        print(f"generated {len(paths):,} JPEGs in {time.perf_counter() - t0:.0f} s")
        subset = tmp / "subset"
        subset.mkdir()
        for p in paths[: bench.cache_images]:
            os.link(p, subset / p.name)
        rows = loader_rows(bench, tmp / "all", subset)
        train = training_run(bench, tmp / "all", tmp)
        info = {"images": bench.images, "size": "640x480", "crop": bench.crop, "batch_size": bench.batch_size,
                "cache_images": bench.cache_images, "decode_ms": decode_ms(paths),
                "file_kb": sum(p.stat().st_size for p in paths[:200]) / min(200, len(paths)) / 1024,
                "decoded_mb": 640 * 480 * 3 / 2**20, "command": bench.command,
                "cores": len(os.sched_getaffinity(0)),
                "machine": f"{len(os.sched_getaffinity(0))} of this machine's {os.cpu_count()} cores (CPU affinity)",
                "load": f"Load average at the end: {os.getloadavg()[0]:.1f} (a shared machine: other jobs ran)."}
    return rows, train, info


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m src.bench.loader", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=5000, help="synthetic 640x480 JPEGs to generate")
    ap.add_argument("--cache-images", type=int, default=1000, help="photos of the cached rows (they must fit in memory)")
    ap.add_argument("--batches", type=int, default=30, help="batches timed per row, after the first")
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--train-steps", type=int, default=40)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="figures/loader", help="writes OUT.md")
    ap.add_argument("--row", help=argparse.SUPPRESS)  # internal: one loader row in this process, as JSON
    args = ap.parse_args(argv)
    if args.row:
        spec = json.loads(args.row)
        print("ROW " + json.dumps(loader_row(**spec)))
        return 0
    if args.images < 10 or not 3 <= args.cache_images <= args.images:
        raise UserError("--images must be at least 10 and --cache-images between 3 and --images")
    out = Path(args.out)
    check_writable(out.parent, files=(out.name + ".md",), what="--out")
    bench = LoaderBench(images=args.images, cache_images=args.cache_images, batches=args.batches, crop=args.crop,
                        batch_size=args.batch_size, train_steps=args.train_steps, workers=tuple(args.workers),
                        command=" ".join(["python -m src.bench.loader", *(argv if argv is not None else sys.argv[1:])]))
    rows, train, info = run(bench)
    atomic_write_bytes(out.with_suffix(".md"), markdown(rows, train, info).encode())
    print(f"wrote {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    run_cli(main)
