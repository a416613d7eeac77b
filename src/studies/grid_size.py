"""Model size against quality on an expensive operator (question 5): the bilateral grid's stream width on
detail-enhance, beside its 8-bit errors and its speed.

    python -m src.studies.grid_size train [--widths 4 8 32] [--seeds 0 1] [--shard 0/2]   # figures/grid-size-runs.csv
    python -m src.studies.grid_size table [--repeats 7]                                   # figures/grid-size.{md,csv}

``train``: the operators study's recipe (:func:`src.studies.operators.train_one`'s config: the photos, 256-px crops,
``OPERATOR_STEPS`` steps, detail-enhance's own options) with the stream's ``width`` changed, nothing else. Width 16
is the shipped model and its seeds (``make operators``): reused, not retrained. Each run is scored on the 7
validation photos at native size (the split training chose its checkpoint on: optimistic alike for every width;
Kodak stays for the shipped models), its row appended to the runs CSV as it ends, so the study resumes.
``table``: per width, mean ± sd over seeds, and ``predict``'s MP/s at 4 MP beside the operator's (every width and the
operator timed in one round robin, so the machine's slow spells weigh on all alike).
"""
from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import Sequence

import numpy as np

from src.cli import run_cli, shard, strict_json
from src.dataset.sources import photo
from src.errors import UserError
from src.filters import get_filter
from src.inference.predict import predict
from src.io.files import atomic_write_bytes
from src.io.tables import markdown_table, mean_sd, read_csv, stamp, write_csv
from src.io.timing import interleaved_medians
from src.models import load_model
from src.studies.operators import OPERATOR_ARGS, OPERATOR_STEPS, checkpoint_path, split_scores
from src.studies.runs import run_missing
from src.threads import set_threads
from src.training.config import TrainConfig
from src.training.train import train

OPERATOR = "detail-enhance"
SHIPPED_WIDTH = 16  # MODEL_DEFAULTS' width: the shipped model and its seeds
COMMAND = "python -m src.studies.grid_size"


def checkpoint(width: int, seed: int) -> Path:
    if width == SHIPPED_WIDTH:
        return checkpoint_path(get_filter(OPERATOR), seed)
    return Path("runs/grid-size") / f"{OPERATOR}-w{width}-s{seed}.ckpt"


def train_one(width: int, seed: int, steps: int, threads: int | None) -> dict:
    """One width, one seed: trained (width 16: the operators study's run), then scored on the validation photos."""
    out, seconds = checkpoint(width, seed), None
    if width != SHIPPED_WIDTH:
        cfg = TrainConfig(model="bilateral-grid", model_kwargs={**OPERATOR_ARGS[OPERATOR], "width": width},
                          filter=OPERATOR, data="photos", crop=256, max_steps=steps, seed=seed, threads=threads,
                          output=str(out), quiet=True, logger="none", test=False)
        cfg.resume = (Path(cfg.run_dir) / out.stem / "checkpoints" / "last.ckpt").exists()
        seconds = round(train(cfg)["train_seconds"], 1)
    elif not out.exists():
        raise UserError(f"{out}: the width-{SHIPPED_WIDTH} runs are the operators study's; run `make operators`")
    net = load_model(out)
    score = split_scores(net, get_filter(OPERATOR), "val")
    return {"width": width, "seed": seed, "params": sum(p.numel() for p in net.parameters()), "train_s": seconds,
            "val_psnr": score["psnr"], "val_trivial_psnr": score["trivial_psnr"], "val_ssim": score["ssim"],
            "max_err_255": score["max_err_255"], "changed_8bit": score["changed_8bit"], "checkpoint": str(out)}


def make_table(runs: list[dict], repeats: int) -> tuple[list[dict], str]:
    set_threads(2)
    flt, widths, img = get_filter(OPERATOR), sorted({int(r["width"]) for r in runs}), photo(4.0)
    nets = [load_model(checkpoint(w, 0)) for w in widths]
    # every width and the operator in one round robin: a slow spell of this shared machine weighs on all alike
    seconds = interleaved_medians([*(functools.partial(predict, n, img) for n in nets), lambda: flt(img)], repeats)
    mp, rows = img.shape[0] * img.shape[1] / 1e6, []
    for width, sec in zip(widths, seconds):
        mine = [r for r in runs if int(r["width"]) == width]
        vals = [float(r["val_psnr"]) for r in mine]
        rows.append({"width": width, "params": int(mine[0]["params"]), "seeds": len(mine), "val_psnr": mean_sd(vals, 2),
                     "gain": float(np.mean(vals)) - float(mine[0]["val_trivial_psnr"]),
                     "max_err_255": float(np.mean([float(r["max_err_255"]) for r in mine])),
                     "changed_8bit": float(np.mean([float(r["changed_8bit"]) for r in mine])),
                     "net_mps_4": mp / sec, "op_mps_4": mp / seconds[-1]})
        print(strict_json(rows[-1]), flush=True)
    table = markdown_table(
        ["stream width", "params", "seeds", "val PSNR (dB)", "over the input", "max \\|error\\| (1/255)",
         "8-bit values changed", "MP/s at 4 MP: net / operator", "× operator"],
        [(f"{r['width']}" + (" (shipped)" if r["width"] == SHIPPED_WIDTH else ""), r["params"], r["seeds"], r["val_psnr"],
          f"{r['gain']:+.2f}", f"{r['max_err_255']:.1f}", f"{100 * r['changed_8bit']:.1f} %",
          f"{r['net_mps_4']:.1f} / {r['op_mps_4']:.2f}", f"{r['net_mps_4'] / r['op_mps_4']:.1f}x") for r in rows],
        align="lrrrrrrrr")
    note = (f"{OPERATOR}, bilateral grid ({', '.join(f'{k}={v}' for k, v in OPERATOR_ARGS[OPERATOR].items())}), "
            f"{OPERATOR_STEPS} optimiser steps on 256-px crops of the 42 training photos; scored on the 7 validation "
            "photos at native size (mean over photos; max |error| is each photo's largest, averaged), mean ± sd over "
            f"seeds; speed: `predict` and the operator on the same 4 MP photo, 2 threads, all in one round robin. Made by "
            f"`{COMMAND} table` {stamp()}.")
    return rows, f"{table}\n\n{note}\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=f"{COMMAND}", description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=("train", "table"))
    ap.add_argument("--widths", nargs="+", type=int, default=[4, 8, SHIPPED_WIDTH, 32])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    ap.add_argument("--steps", type=int, default=OPERATOR_STEPS)
    ap.add_argument("--shard", default="0/1", help="I/N: every N-th run (width, seed) from the I-th")
    ap.add_argument("--threads", type=int, default=None, help="per run (default: the free cores)")
    ap.add_argument("--repeats", type=int, default=15, help="timing rounds (each times every width and the operator)")
    ap.add_argument("--figures", type=Path, default=Path("figures"))
    args = ap.parse_args(argv)
    part = shard(args.shard)
    if min(args.widths) < 1:
        raise UserError(f"--widths must be positive, got {args.widths}")
    runs_csv = args.figures / "grid-size-runs.csv"
    if args.stage == "table":
        rows, md = make_table(read_csv(runs_csv), args.repeats)
        write_csv(args.figures / "grid-size.csv", rows)
        atomic_write_bytes(args.figures / "grid-size.md", md.encode())
        print(md, end="")
        return 0
    run_missing(runs_csv, [(f"width {width} seed {seed}", {"width": width, "seed": seed},
                            functools.partial(train_one, width, seed, args.steps, args.threads))
                           for width, seed in [(w, s) for s in args.seeds for w in args.widths][part]])
    return 0


if __name__ == "__main__":
    run_cli(main)
