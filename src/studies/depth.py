"""Question 7 on photographs: what depth (the CAN's context) buys at a fixed width, against a wider net and the
low-resolution model (the bilateral grid), with every crop at least twice the receptive field.

    python -m src.studies.depth train [--operators ...] [--variants ...] [--seeds 0 1 2] [--shard 0/2]
    python -m src.studies.depth table [--repeats 3]        # figures/depth.{md,csv,png}

``train``: the CAN (``--model can``) at width 24 and depths 3, 5, 7 (receptive field 5, 17, 65 px) and at depth 5
and widths 8, 16, on edge-preserving, detail-enhance and Sobel; the operators' recipe (the 42 training photos, MSE,
batch 4, :data:`STEPS` optimiser steps, every run taking every step) on :data:`CROP`-px crops (>= 2 x 65 px), a
validation every :data:`VAL_EVERY` steps. Each run is scored on the 7 validation photos at native size (the split
training chose its checkpoint on: optimistic alike for every network; Kodak stays for the shipped models), its row
appended to ``figures/depth-runs.csv`` as it ends, so the study resumes and shards (``--shard I/N``, one per core).
``table``: per operator and network, mean ± sd over seeds beside the input's PSNR, whether the runs had converged,
and ``predict``'s MP/s at 1 MP (seed 0; 2 threads); beside them each operator's shipped bilateral grid (Sobel's
shipped compact net) scored on the same photos and timed the same way.
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
from src.reports.sweeps import plot_depth
from src.studies.operators import checkpoint_path, split_scores
from src.studies.runs import run_missing
from src.threads import set_threads
from src.training.config import TrainConfig
from src.training.train import train

# label -> the CAN's options: depth at width 24 (the paper's), then width at depth 5
VARIANTS: dict[str, dict] = {"depth 3": {"width": 24, "depth": 3}, "depth 5": {"width": 24, "depth": 5},
                             "depth 7": {"width": 24, "depth": 7}, "width 8": {"width": 8, "depth": 5},
                             "width 16": {"width": 16, "depth": 5}}
OPERATORS = ("edge-preserving", "detail-enhance", "sobel")
STEPS, CROP, VAL_EVERY = 1500, 144, 250
RUNS = Path("runs/depth")
COMMAND = "python -m src.studies.depth"


def receptive_field(variant: str) -> int:
    from src.models.can import dilations  # start-up: torch; --help answers without it

    return 2 * sum(dilations(VARIANTS[variant]["depth"])) + 1


def train_one(name: str, variant: str, seed: int, steps: int, threads: int | None) -> dict:
    """One operator, network and seed: trained, then scored on the validation photos."""
    flt = get_filter(name)
    out = RUNS / f"{flt.key}-{variant.replace(' ', '')}-s{seed}.ckpt"
    cfg = TrainConfig(model="can", model_kwargs=dict(VARIANTS[variant]), filter=name, data="photos", crop=CROP,
                      batch_size=4, loss="mse", max_steps=steps, steps_per_epoch=VAL_EVERY, patience=10**6, seed=seed,
                      threads=threads, output=str(out), quiet=True, logger="none", test=False)
    cfg.resume = (Path(cfg.run_dir) / out.stem / "checkpoints" / "last.ckpt").exists()
    result = train(cfg)
    net = load_model(out)
    score = split_scores(net, flt, "val")
    return {"filter": flt.key, "variant": variant, "seed": seed, "params": sum(p.numel() for p in net.parameters()),
            "receptive_field": receptive_field(variant), "steps": result["steps"],
            "train_s": round(result["train_seconds"], 1),
            "converged": result["converged"], "val_gain_last": result["val_gain_last"]} | \
        {f"val_{k}": v for k, v in score.items()} | {"checkpoint": str(out)}


def reference(name: str) -> tuple[str, Path]:
    """The shipped model that answers the same operator without depth: the bilateral grid (Sobel: the compact net)."""
    flt = get_filter(name)
    return ("compact net (shipped)", Path("models/sobel.ckpt")) if flt.key == "sobel" else \
        ("bilateral grid (shipped)", checkpoint_path(flt, 0))


def make_table(runs: list[dict], repeats: int) -> tuple[list[dict], str]:
    set_threads(2)
    img, rows = photo(1.0), []
    for key in dict.fromkeys(r["filter"] for r in runs):
        flt, mine = get_filter(key), [r for r in runs if r["filter"] == key]
        label, ref_path = reference(key)
        if not ref_path.exists():
            print(f"{key}: no {ref_path}, so no shipped row beside its CAN rows")
        groups = {v: [r for r in mine if r["variant"] == v] for v in VARIANTS if any(r["variant"] == v for r in mine)}
        nets = [load_model(min(g, key=lambda r: int(r["seed"]))["checkpoint"]) for g in groups.values()]  # seed 0
        nets += [load_model(ref_path)] if ref_path.exists() else []
        seconds = interleaved_medians([functools.partial(predict, n, img) for n in nets], repeats)
        mp = img.shape[0] * img.shape[1] / 1e6
        for (variant, g), sec in zip(groups.items(), seconds):
            vals = [float(r["val_psnr"]) for r in g]
            rows.append({"filter": key, "network": f"CAN {VARIANTS[variant]['width']}x{VARIANTS[variant]['depth']}",
                         "receptive_field": int(g[0]["receptive_field"]), "params": int(g[0]["params"]),
                         "seeds": len(g),
                         "val_psnr": mean_sd(vals, 2), "gain": float(np.mean(vals)) - float(g[0]["val_trivial_psnr"]),
                         "converged": sum(str(r.get("converged")) == "True" for r in g),  # empty: too few validations
                         "val_gain_last": float(np.mean(gains)) if (gains := [float(r["val_gain_last"]) for r in g
                                                                               if "val_gain_last" in r]) else "",
                         "mps_1": mp / sec})
        if not ref_path.exists():
            continue
        ref = split_scores(nets[-1], flt, "val")
        rows.append({"filter": key, "network": label, "receptive_field": "", "params":
                     sum(p.numel() for p in nets[-1].parameters()), "seeds": 1, "val_psnr": f"{ref['psnr']:.2f}",
                     "gain": ref["psnr"] - ref["trivial_psnr"], "converged": "", "val_gain_last": "",
                     "mps_1": mp / seconds[-1]})
        print("\n".join(strict_json(r) for r in rows if r["filter"] == key), flush=True)
    table = markdown_table(
        ["operator", "network", "RF (px)", "params", "seeds", "val PSNR (dB)", "over the trivial answer", "converged",
         "last 3 validations' gain (dB)", "MP/s at 1 MP"],
        [(r["filter"], r["network"], r["receptive_field"], r["params"], r["seeds"], r["val_psnr"], f"{r['gain']:+.2f}",
          f"{r['converged']} of {r['seeds']}" if r["receptive_field"] != "" else "",
          f"{r['val_gain_last']:+.2f}" if r["val_gain_last"] != "" else "", f"{r['mps_1']:.2f}") for r in rows],
        align="llrrrrrrrr")
    steps = "/".join(sorted({str(r["steps"]) for r in runs}))
    note = (f"CAN runs: {steps} optimiser steps of 4 crops of {CROP} px (>= 2x the largest receptive field, 65 px) "
            "from the 42 training photos, MSE, Adam 1e-3 (x0.3 after 2 validations without a new best), no early stop, "
            f"a validation every {VAL_EVERY} steps; scored on the 7 validation photos at native size, mean ± sd over "
            "seeds; over the trivial answer: PSNR above returning the input (Sobel: zeros). Converged: the last 3 "
            "validations gained < 0.1 dB. "
            "Shipped rows: the operators study's bilateral grid (seed 0; 1,500 steps of 256-px crops) and the Sobel "
            "compact net, scored on the same photos. MP/s: `predict` on one 1 MP photo, 2 threads, each operator's "
            f"networks in one round robin. Made by `{COMMAND} table` {stamp()}.")
    return rows, f"{table}\n\n{note}\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=("train", "table"))
    ap.add_argument("--operators", nargs="+", default=list(OPERATORS))
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="VARIANT",
                    help=f"networks: {', '.join(map(repr, VARIANTS))}")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--shard", default="0/1", help="I/N: every N-th run (seed, operator, network) from the I-th")
    ap.add_argument("--threads", type=int, default=None, help="per run (default: the free cores)")
    ap.add_argument("--repeats", type=int, default=3, help="timing rounds")
    ap.add_argument("--figures", type=Path, default=Path("figures"))
    args = ap.parse_args(argv)
    part = shard(args.shard)
    for name in args.operators:
        get_filter(name)  # an unknown name: its one-line error before any work
    if args.steps < 1:
        raise UserError(f"--steps must be at least 1, got {args.steps}")
    runs_csv = args.figures / "depth-runs.csv"
    if args.stage == "table":
        rows, md = make_table(read_csv(runs_csv), args.repeats)
        write_csv(args.figures / "depth.csv", rows)
        atomic_write_bytes(args.figures / "depth.md", md.encode())
        plot_depth(read_csv(runs_csv), {r["filter"]: float(r["val_psnr"]) for r in rows if "grid" in r["network"]},
                   args.figures / "depth.png")
        print(md, end="")
        return 0
    jobs = [(s, o, v) for s in args.seeds for o in args.operators for v in args.variants][part]
    run_missing(runs_csv, [(f"{name} {variant} seed {seed}",
                            {"filter": get_filter(name).key, "variant": variant, "seed": seed},
                            functools.partial(train_one, name, variant, seed, args.steps, args.threads))
                           for seed, name, variant in jobs])
    return 0


if __name__ == "__main__":
    run_cli(main)
