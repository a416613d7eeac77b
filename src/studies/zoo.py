"""The zoo run: every filter x {compact net, CAN, seed autoencoder}, a fixed step budget each, one table.

    python -m src.studies.zoo [--steps N] [--filters random sobel ...] [--models compact can ...]

For each run: train on the embedded data for the model's step budget (``ZOO_STEPS``, or ``--steps``; a
compact net ends with the training module's L-BFGS least-squares finish, kept only if the validation
split improves), evaluate on the test split
(PSNR, SSIM at native resolution), count parameters, and time CPU inference of the network and of
the OpenCV reference on the same 1 MP photo. Writes ``figures/zoo.md`` (the README table) and
``figures/zoo.csv``; for a linear target it also collapses the trained network into its effective
kernel and plots it beside the true kernel (``figures/kernel-<model>-<filter>.png``).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from src.cli import run_cli, strict_json
from src.dataset.sources import photo
from src.errors import UserError
from src.evaluation.evaluate import trivial_psnr
from src.evaluation.kernels import cosine_similarity, effective_kernel, plot_kernels
from src.filters import available, get_filter
from src.filters.zoo import ZOO_FILTERS
from src.inference.predict import predict
from src.io import tables
from src.io.files import atomic_write_bytes
from src.io.tables import read_csv, write_csv
from src.io.timing import median_seconds
from src.models import load_model
from src.training.config import CAN_ARGS, TrainConfig
from src.training.train import train

ZOO_MODELS = ("compact", "can", "autoencoder")
ZOO_STEPS = {"compact": 400, "can": 600, "autoencoder": 1500}  # optimiser steps per run
TRAIN_ARGS = {"autoencoder": {"steps_per_epoch": 50}}  # everything else: src.training.config.MODEL_DEFAULTS


def model_args(model: str, flt) -> dict[str, Any]:
    """Per-filter network options: a purely linear compact net for linear targets, the RGB bank for colour."""
    if model == "can":
        return dict(CAN_ARGS)
    if model != "compact":
        return {}
    kernel = flt.extra.get("kernel")
    if flt.torch_fn is not None and kernel is not None and flt.name in ("random", "emboss", "laplacian"):
        return {"pairs": 0, "linear": 1, "kernel_size": int(np.asarray(kernel).shape[0])}
    if flt.out_channels == 3:
        return {"mix": 0, "pairs": 1, "linear": 3}
    return {}


def megapixels_per_second(fn, img: np.ndarray, repeats: int) -> float:
    return img.shape[0] * img.shape[1] / 1e6 / median_seconds(lambda: fn(img), repeats)


def run_one(name: str, params: dict, model: str, steps: int | None, out_dir: Path, repeats: int,
            net_args: dict[str, Any] | None = None, tag: str = "", accelerator: str = "cpu",
            threads: int | None = None, seed: int = 0, callbacks: Sequence[Any] = (),
            train_args: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train one network on one filter for ``steps`` optimiser steps (None: ``ZOO_STEPS``) and measure it.

    ``net_args`` override the zoo's per-filter network options (the sweeps use it); ``tag`` names the
    checkpoint ``models/zoo/<model><tag>-<filter>.ckpt``; ``seed`` is the training seed; ``callbacks`` go to
    :func:`~src.training.train.train`; ``train_args`` override :class:`TrainConfig` fields (``patience``...). ``accelerator`` is where training runs; the
    MP/s columns are always CPU inference.
    """
    flt = get_filter(name, **params)
    steps = steps or ZOO_STEPS[model]
    result = train(TrainConfig(
        model=model, model_kwargs=model_args(model, flt) | (net_args or {}), filter=name, filter_params=dict(params),
        data="skimage", max_steps=steps, seed=seed, quiet=True, logger="none", accelerator=accelerator, threads=threads,
        output=str(Path("models/zoo") / f"{model}{tag}-{flt.key}.ckpt"), **(TRAIN_ARGS.get(model, {}) | (train_args or {}))), callbacks)
    net = load_model(result["checkpoint"])
    row_extra = {"steps": result["steps"], "finish_start": result.get("finish_start")}
    img = photo(1.0)
    row = {"filter": flt.key, "model": model, "psnr": result.get("test_psnr"), "ssim": result.get("test_ssim"),
           "params": result["params"], "train_s": result["train_seconds"],
           "net_mps": megapixels_per_second(lambda im: predict(net, im), img, repeats),
           "ref_mps": megapixels_per_second(flt, img, repeats), **row_extra}
    row["speed_ratio"] = row["net_mps"] / row["ref_mps"]
    true = flt.extra.get("rgb_kernel")
    if true is not None:
        learned = effective_kernel(net, true.shape[-1])
        row["kernel_cosine"] = cosine_similarity(learned, true)
        # On gray inputs only the channel sum acts: the spatial kernel, free of the colour split.
        row["gray_kernel_cosine"] = cosine_similarity(learned.sum(0), true.sum(0))
        plot_kernels(out_dir / f"kernel-{model}-{flt.key}.png", learned, true,
                     f"{model} on {flt.key}: cosine {row['kernel_cosine']:.5f} (RGB), "
                     f"{row['gray_kernel_cosine']:.5f} (gray)")
    return row


def zoo_filters_by_key() -> dict[str, Any]:
    """The zoo's filters by their table key, in table order."""
    filters = [get_filter(n, **p) for n, p in ZOO_FILTERS]
    return {f.key: f for f in filters}


def add_trivial_psnr(rows: list[dict]) -> None:
    """Fill each row's ``trivial_psnr`` (one evaluation per zoo filter)."""
    by_key = zoo_filters_by_key()
    cache: dict[str, float] = {}
    for r in rows:
        if r.get("trivial_psnr") is None and r["filter"] in by_key:
            if r["filter"] not in cache:
                cache[r["filter"]] = trivial_psnr(by_key[r["filter"]])
            r["trivial_psnr"] = cache[r["filter"]]


def budget_text(steps: int | None) -> str:
    """The budget as the table states it: one step count, or the per-model ones."""
    if steps:
        return f"{steps} optimiser steps"
    return "the model's step budget (" + ", ".join(f"{m} {n}" for m, n in ZOO_STEPS.items()) + " optimiser steps)"


def markdown_table(rows: list[dict], budget: str) -> str:
    def cells(r: dict) -> tuple:
        cos = f"{r['kernel_cosine']:.5f} / {r['gray_kernel_cosine']:.5f}" if r.get("kernel_cosine") is not None else ""
        ssim = f"{r['ssim']:.4f}" if r.get("ssim") is not None else ""
        trivial = f"{r['trivial_psnr']:.2f}" if r.get("trivial_psnr") is not None else ""
        return (r["filter"], r["model"], f"{r['psnr']:.2f}", trivial, ssim, r["params"], f"{r['net_mps']:.2f}",
                f"{r['ref_mps']:.2f}", f"{r['speed_ratio']:.2f}x", cos)

    header = ["filter", "model", "test PSNR (dB)", "trivial PSNR", "SSIM", "params", "net MP/s", "reference MP/s",
              "speed ratio", "kernel cos RGB / gray"]
    lines = [tables.markdown_table(header, [cells(r) for r in rows], align="llrrrrrrrr")]
    lines.append("")
    lines.append(f"Each run: {budget} of CPU training on the embedded data, test split (astronaut, coffee, camera, "
                 "coins) at native resolution; trivial PSNR = returning the input unchanged (RGB filters) or all "
                 "zeros (gray ones); MP/s on a 1 MP photo, median of repeated calls, same process and "
                 "threads for the network (`predict`) and the OpenCV reference; speed ratio = net / reference.")
    return "\n".join(lines) + "\n"


def write_table(rows: list[dict], budget: str, out_dir: Path, stem: str, threads: int | None = None) -> None:
    """``<stem>.md`` (the README table) and ``<stem>.csv``, atomically."""
    note = f"\nTraining and timing on {threads} CPU thread(s) per run (torch and OpenCV alike).\n" if threads else ""
    atomic_write_bytes(out_dir / f"{stem}.md", (markdown_table(rows, budget) + note).encode())
    write_csv(out_dir / f"{stem}.csv", rows)


def table_order(rows: list[dict]) -> list[dict]:
    """Rows sorted as the zoo runs them: filter by filter, compact / CAN / autoencoder within each."""
    keys = list(zoo_filters_by_key())

    def rank(row: dict) -> tuple[int, int]:
        f = keys.index(row["filter"]) if row["filter"] in keys else len(keys)
        m = ZOO_MODELS.index(row["model"]) if row["model"] in ZOO_MODELS else len(ZOO_MODELS)
        return f, m

    return sorted(rows, key=rank)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m src.studies.zoo", description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=None, help=f"optimiser steps per run (default per model: {ZOO_STEPS})")
    ap.add_argument("--filters", nargs="+", default=None, help="subset of filter names (default: the whole zoo)")
    ap.add_argument("--models", nargs="+", default=list(ZOO_MODELS), help=f"subset of {ZOO_MODELS}")
    ap.add_argument("--repeats", type=int, default=5, help="timing repeats per MP/s figure")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch and OpenCV threads per run (1: run two shards side by side on 2 cores)")
    ap.add_argument("--stem", default="zoo", help="output names: FIGURES/STEM.md and STEM.csv")
    ap.add_argument("--merge", nargs="+", default=None, metavar="CSV",
                    help="no training: merge shard CSVs into FIGURES/STEM.{md,csv} in table order")
    ap.add_argument("--accelerator", default="cpu", help="where to train: cpu or gpu (timings stay CPU)")
    ap.add_argument("--figures", default="figures")
    args = ap.parse_args(argv)
    out_dir = Path(args.figures)
    if args.merge:
        rows = table_order([r for p in args.merge for r in read_csv(Path(p))])
        add_trivial_psnr(rows)
        write_table(rows, budget_text(args.steps), out_dir, args.stem, args.threads)
        print(markdown_table(rows, budget_text(args.steps)))
        return 0

    filters = ZOO_FILTERS if args.filters is None else [(n, dict(ZOO_FILTERS).get(n, {})) for n in args.filters]
    for n, _ in filters:
        if n not in available():
            raise UserError(f"unknown filter {n!r}; available: {', '.join(available())}")
    for m in args.models:
        if m not in ZOO_MODELS:
            raise UserError(f"unknown zoo model {m!r}; expected some of {ZOO_MODELS}")
    rows, t0 = [], time.time()
    for name, params in filters:
        for model in args.models:
            row = run_one(name, params, model, args.steps, out_dir, args.repeats, accelerator=args.accelerator,
                          threads=args.threads)
            rows.append(row)
            add_trivial_psnr(rows)
            print(strict_json(row), flush=True)
            write_table(rows, budget_text(args.steps), out_dir, args.stem, args.threads)
    print(markdown_table(rows, budget_text(args.steps)))
    print(f"{len(rows)} runs in {time.time() - t0:.0f} s; wrote {out_dir / args.stem}.md and .csv")
    return 0


if __name__ == "__main__":
    run_cli(main)
