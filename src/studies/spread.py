"""Seeds and spreads: zoo runs repeated over seeds, mean ± sd, so one lucky or unlucky run is not the answer.

    python -m src.studies.spread [--models can] [--filters sobel edge-preserving] [--seeds 0 1 2] [--resume]

Each run is exactly the zoo's (``src.studies.zoo.run_one``: the model's step budget ``ZOO_STEPS``,
the zoo's network options) with ``--seed`` changed; the seed moves the initial weights, the crops and
their order. Writes ``figures/spread.csv`` (one row per run) and ``figures/spread.md`` (mean ± sd, min
and max per filter and model, in the zoo's table order) after every run. ``--resume`` keeps the runs
already in ``spread.csv`` and does only the missing (filter, model, seed) runs.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from src.cli import run_cli
from src.errors import UserError
from src.io.files import atomic_write_bytes
from src.io.tables import markdown_table, mean_sd, read_csv, write_csv


def _span(values: list[int]) -> str:
    """``600``, or ``850 – 1500`` when the runs differ."""
    return str(values[0]) if min(values) == max(values) else f"{min(values)} – {max(values)}"


def markdown(rows: list[dict]) -> str:
    from src.studies.zoo import (
        ZOO_STEPS,  # start-up: torch only when called
        table_order,  # start-up: torch only when called
    )

    groups: dict[tuple[str, str], list[dict]] = {}
    for r in table_order(rows):
        groups.setdefault((r["filter"], r["model"]), []).append(r)
    table = []
    for (flt, model), runs in groups.items():
        psnr = [r["psnr"] for r in runs]
        trivial = runs[0].get("trivial_psnr")
        table.append((flt, model, len(runs), mean_sd(psnr, 2), f"{min(psnr):.2f} – {max(psnr):.2f}",
                      mean_sd([r["ssim"] for r in runs], 3), _span([r["steps"] for r in runs]),
                      "" if trivial is None else f"{trivial:.2f}"))
    lines = [markdown_table(["filter", "model", "seeds", "test PSNR (dB)", "min – max (dB)", "SSIM", "steps",
                             "trivial PSNR"], table, align="llrrrrrr")]
    lines += ["", "Mean ± sd (sample) over seeds; each run is the zoo's (" + ", ".join(
        f"{m} {n}" for m, n in ZOO_STEPS.items()) + " optimiser steps, 1 thread; steps: those taken, fewer than the "
              "budget where the validation plateau stopped a run), test split at native resolution; "
              "trivial PSNR = returning the input unchanged (RGB filters) or all zeros (gray ones), as in the zoo."]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    from src.filters import get_filter  # start-up: torch only when called
    from src.filters.zoo import ZOO_FILTERS  # start-up: torch only when called
    from src.studies.zoo import ZOO_MODELS, add_trivial_psnr, run_one  # start-up: torch only when called

    ap = argparse.ArgumentParser(prog="python -m src.studies.spread", description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["can"], help=f"subset of {ZOO_MODELS}")
    ap.add_argument("--filters", nargs="+", default=["sobel", "edge-preserving"], help="zoo filter names")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=None, help="optimiser steps per run (default: the zoo's ZOO_STEPS)")
    ap.add_argument("--figures", default="figures")
    ap.add_argument("--resume", action="store_true", help="keep the runs in FIGURES/spread.csv, do the missing ones")
    args = ap.parse_args(argv)
    zoo = dict(ZOO_FILTERS)
    for name in args.filters:
        if name not in zoo:
            raise UserError(f"unknown zoo filter {name!r}; available: {', '.join(zoo)}")
    for model in args.models:
        if model not in ZOO_MODELS:
            raise UserError(f"unknown zoo model {model!r}; expected some of {ZOO_MODELS}")
    out = Path(args.figures)
    rows: list[dict] = []
    if args.resume and (out / "spread.csv").exists():
        rows = [dict(r, seed=int(r["seed"]), steps=int(r["steps"])) for r in read_csv(out / "spread.csv")]
    done = {(r["filter"], r["model"], r["seed"]) for r in rows}
    for name in args.filters:
        for model in args.models:
            for seed in args.seeds:
                if (get_filter(name, **zoo[name]).key, model, seed) in done:
                    continue
                with tempfile.TemporaryDirectory() as plots:  # its kernel plot must not replace the zoo's
                    row = run_one(name, zoo[name], model, args.steps, Path(plots), repeats=1, tag=f"-seed{seed}",
                                  threads=1, seed=seed)
                rows.append({"filter": row["filter"], "model": model, "seed": seed, "psnr": row["psnr"],
                             "ssim": row["ssim"], "steps": row["steps"], "train_s": row["train_s"]})
                print(f"{row['filter']} {model} seed {seed}: {row['psnr']:.2f} dB", flush=True)
                write_csv(out / "spread.csv", rows)
                atomic_write_bytes(out / "spread.md", markdown(rows).encode())
    add_trivial_psnr(rows)
    write_csv(out / "spread.csv", rows)
    atomic_write_bytes(out / "spread.md", markdown(rows).encode())
    print(markdown(rows))
    if not all(np.isfinite(r["psnr"]) for r in rows):
        raise UserError("a run's test PSNR is not a number (a diverged run); see figures/spread.csv")
    return 0


if __name__ == "__main__":
    run_cli(main)
