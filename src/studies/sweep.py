"""Sweeps for the README's questions 5 and 7, each a list of zoo runs (same budget, same data):

    python -m src.studies.sweep size  [--steps N]   # params vs PSNR on Sobel -> figures/sweep-size.{csv,md,png}
    python -m src.studies.sweep depth [--steps N]   # CAN depth on Sobel vs a non-local operator
                                                       #   -> figures/sweep-depth.{csv,md,png}
    python -m src.studies.sweep depth-steps [--steps 2000] [--seeds 0 1]
                                                       # CAN depth on two non-local operators, long equal
                                                       #   step budgets, seeds -> figures/sweep-depth-steps.*

Budgets are optimiser steps (default: the zoo's per-model ``ZOO_STEPS``), the same on any machine.

``size`` trains compact nets (kernel 3/5/7, RGB bank, hidden layer), CANs of growing width and depth
and the seed autoencoder on the Sobel target and plots test PSNR against parameter count, marking the
smallest model that reaches 45 dB. ``depth`` trains the CAN at depths 3..7 (receptive field 5..65 px)
on Sobel, whose support is 5 x 5, and on OpenCV's edge-preserving filter, whose support is the image.
``depth-steps`` asks what depth buys given enough training: depths 3..7 on edge-preserving and
detail-enhance, :data:`DEPTH_STEPS` steps each (3.3x the zoo's CAN budget), over seeds; the table gives
mean ± sd and, per depth, how much the best validation PSNR still rose in the second half of the run
(near 0: the run had levelled off).
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from src.cli import run_cli, strict_json
from src.errors import UserError
from src.io.files import atomic_write_bytes
from src.io.tables import markdown_table, mean_sd, read_csv, write_csv
from src.reports.sweeps import DEPTH_WIDTH, TARGET_DB, plot_sweep

if TYPE_CHECKING:
    from src.training.callbacks import ValCurve

# (model, network options, label) on the Sobel target.
SIZE_RUNS: list[tuple[str, dict[str, Any], str]] = [
    ("compact", {"kernel_size": 3}, "compact k3"),
    ("compact", {"kernel_size": 5}, "compact k5 (default)"),
    ("compact", {"separable": True}, "compact k5, separable"),
    ("compact", {"separable": True, "symmetric": True}, "compact k5, separable, symmetric"),
    ("compact", {"kernel_size": 7}, "compact k7"),
    ("compact", {"mix": 0}, "compact k5, RGB bank"),
    ("compact", {"hidden": 8}, "compact k5, hidden 8"),
    ("can", {"width": 4, "depth": 3}, "CAN 4x3"),
    ("can", {"width": 8, "depth": 5}, "CAN 8x5"),
    ("can", {"width": 16, "depth": 6}, "CAN 16x6"),
    ("autoencoder", {}, "seed autoencoder"),
]
DEPTH_FILTERS = [("sobel", {}), ("edge-preserving", {})]
DEPTH_LEVELS = (3, 4, 5, 6, 7)
DEPTH_STEPS_FILTERS = [("edge-preserving", {}), ("detail-enhance", {})]
DEPTH_STEPS = 2000
DEPTH_STEPS_SEEDS = (0, 1)
# No early stop, and the learning rate cut (x0.3) only after 10 validations (200 steps) without a new best
# instead of the zoo's 2 (40 steps), so that the later of the 2000 steps still learn.
DEPTH_STEPS_TRAIN = {"patience": 10**6, "lr_patience": 10}


def size_runs() -> list[tuple[str, dict, str, dict, str]]:
    """(filter, filter params, model, network options, label) for the size sweep."""
    return [("sobel", {}, m, a, label) for m, a, label in SIZE_RUNS]


def depth_runs(filters: list[tuple[str, dict]] = DEPTH_FILTERS) -> list[tuple[str, dict, str, dict, str]]:
    from src.models.can import dilations  # start-up: torch only when called

    return [(f, p, "can", {"width": DEPTH_WIDTH, "depth": d}, f"depth {d} (RF {2 * sum(dilations(d)) + 1})")
            for f, p in filters for d in DEPTH_LEVELS]


def runs_for(kind: str) -> list[tuple[str, dict, str, dict, str]]:
    return {"size": size_runs, "depth": depth_runs, "depth-steps": lambda: depth_runs(DEPTH_STEPS_FILTERS)}[kind]()


def seed_table(rows: list[dict], budget: str, how: str | None = None) -> str:
    """Mean ± sd over seeds per (filter, network), with the second-half validation gain (the plateau check).

    ``how``: the footnote's words on how each run trains (default: depth-steps' no-early-stop recipe)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["filter"], r["label"]), []).append(r)
    table = []
    for (flt, label), runs in groups.items():
        gains = [r["val_gain_2nd_half"] for r in runs if r.get("val_gain_2nd_half") is not None]
        table.append((flt, label, runs[0]["params"], len(runs), mean_sd([r["psnr"] for r in runs], 2),
                      mean_sd([r["ssim"] for r in runs], 3), "/".join(sorted({str(r["steps"]) for r in runs})),
                      mean_sd(gains, 2) if gains else "", f"{runs[0]['net_mps']:.2f}"))
    header = ["filter", "network", "params", "seeds", "test PSNR (dB)", "SSIM", "steps", "val gain, 2nd half (dB)",
              "net MP/s"]
    plateau = any(r.get("val_gain_2nd_half") is not None for r in rows)
    if not plateau:  # not measured in this sweep: no empty column
        header.remove("val gain, 2nd half (dB)")
        table = [t[:7] + t[8:] for t in table]
    lines = [markdown_table(header, table, align="llrrrrrrr"[: len(header)]), ""]
    how = how or (f"no early stop: every run takes every step; learning rate x0.3 after {DEPTH_STEPS_TRAIN['lr_patience']} "
                  "validations without a new best, not the zoo's 2")
    lines.append(f"Each run: {budget} on the embedded data ({how}), test split at native resolution, borders included; "
                 "mean ± sd (sample) over seeds." + (" Val gain, 2nd half = best validation PSNR over the whole run minus "
                 "the best in its first half: near 0, the depth had levelled off." if plateau else ""))
    return "\n".join(lines) + "\n"


def smallest_reaching(rows: list[dict], target: float = TARGET_DB) -> dict | None:
    """The row with the fewest parameters whose test PSNR is at least ``target`` (None if none)."""
    ok = [r for r in rows if r["psnr"] >= target]
    return min(ok, key=lambda r: r["params"]) if ok else None


def markdown(kind: str, rows: list[dict], budget: str) -> str:
    if kind == "depth-steps":
        return seed_table(rows, budget)
    if len({r.get("seed", 0) for r in rows}) > 1:  # a sweep over seeds: mean ± sd per network
        return seed_table(rows, budget, "the zoo's recipe: compact nets Adam, then the L-BFGS finish; early stop on a plateau")
    lines = [markdown_table(["filter", "network", "params", "test PSNR (dB)", "SSIM", "net MP/s"],
                            [(r["filter"], r["label"], r["params"], f"{r['psnr']:.2f}", f"{r['ssim']:.4f}",
                              f"{r['net_mps']:.2f}") for r in rows], align="llrrrr")]
    lines.append("")
    lines.append(f"Each run: {budget} on the embedded data (compact nets: Adam, then the L-BFGS finish), "
                 "test split at native resolution, borders included.")
    if kind == "size":
        best = smallest_reaching(rows)
        lines.append(f"Smallest network at >= {TARGET_DB:.0f} dB: " +
                     (f"{best['label']}, {best['params']} parameters, {best['psnr']:.2f} dB." if best else "none."))
    return "\n".join(lines) + "\n"


def write_outputs(kind: str, rows: list[dict], budget: str, out_dir: Path, stem: str | None = None) -> None:
    stem = stem or f"sweep-{kind}"
    write_csv(out_dir / f"{stem}.csv", rows)
    atomic_write_bytes(out_dir / f"{stem}.md", markdown(kind, rows, budget).encode())
    plot_sweep(kind, rows, out_dir / f"{stem}.png")


@dataclass(frozen=True)
class Sweep:
    """One sweep: the command line's options, typed, with its defaults resolved."""
    kind: str  # size, depth or depth-steps
    steps: int | None = None  # None: the zoo's per-model budget
    seeds: tuple[int, ...] = (0,)
    repeats: int = 3
    figures: Path = Path("figures")
    limit: int | None = None
    threads: int | None = None
    filters: tuple[str, ...] | None = None
    only: tuple[str, ...] | None = None  # labels
    stem: str | None = None  # None: sweep-KIND
    accelerator: str = "cpu"

    @property
    def budget(self) -> str:
        from src.studies.zoo import budget_text  # start-up: the zoo brings torch; --help answers without it

        return budget_text(self.steps)


def pick_runs(sweep: Sweep) -> list[tuple[str, dict, str, dict, str]]:
    """The sweep's runs after ``limit``, ``filters`` and ``only``; a UserError if a choice leaves none."""
    runs = runs_for(sweep.kind)[: sweep.limit]
    if sweep.filters:
        runs = [r for r in runs if r[0] in sweep.filters]
        if not runs:
            raise UserError(f"no {sweep.kind} runs on {', '.join(sweep.filters)}")
    if sweep.only:
        runs = [r for r in runs if r[4] in sweep.only]
        if not runs:
            raise UserError(f"no {sweep.kind} run is labelled {' or '.join(map(repr, sweep.only))}")
    return runs


def sweep_row(sweep: Sweep, spec: tuple[str, dict, str, dict, str], seed: int, curve: ValCurve) -> dict:
    """Train and measure one run of the sweep with ``seed``: its row of the table (``curve`` follows its validations)."""
    from src.studies.zoo import run_one  # start-up: the zoo brings torch; --help answers without it

    flt, params, model, net_args, label = spec
    tag = "-" + "-".join(f"{k}{v}" for k, v in net_args.items()) if net_args else ""
    tag += f"-seed{seed}" if seed else ""
    row = run_one(flt, params, model, sweep.steps, sweep.figures, sweep.repeats, net_args=net_args, tag=tag,
                  accelerator=sweep.accelerator, threads=sweep.threads, seed=seed, callbacks=[curve],
                  train_args=DEPTH_STEPS_TRAIN if sweep.kind == "depth-steps" else None)
    row["label"] = label
    if model == "can":
        from src.models.can import dilations  # start-up: torch; --help answers without it

        row["receptive_field"] = 2 * sum(dilations(net_args["depth"])) + 1
    row["seed"] = seed
    if sweep.kind == "depth-steps":
        half = [v for s, v in curve.points if s <= sweep.steps // 2]
        row["val_gain_2nd_half"] = (max(v for _, v in curve.points) - max(half)) if half else None
    return row


def run(sweep: Sweep, runs: list[tuple[str, dict, str, dict, str]]) -> tuple[list[dict], float]:
    """Every run over every seed: the rows and the seconds they took. The outputs are rewritten after
    each row, so a sweep cut short keeps what it measured."""
    from src.training.callbacks import ValCurve  # start-up: Lightning; imported before the clock starts

    rows, t0 = [], time.time()
    for spec, seed in ((r, s) for r in runs for s in sweep.seeds):
        row = sweep_row(sweep, spec, seed, ValCurve())
        rows.append(row)
        print(strict_json(row), flush=True)
        write_outputs(sweep.kind, rows, sweep.budget, sweep.figures, sweep.stem)
    return rows, time.time() - t0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m src.studies.sweep", description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=("size", "depth", "depth-steps"))
    ap.add_argument("--steps", type=int, default=None, help="optimiser steps per run (default: the zoo's per model)")
    ap.add_argument("--seeds", type=int, nargs="+", default=None,
                    help=f"training seeds (default: {list(DEPTH_STEPS_SEEDS)} for depth-steps, 0 otherwise)")
    ap.add_argument("--repeats", type=int, default=3, help="timing repeats per MP/s figure")
    ap.add_argument("--figures", default="figures")
    ap.add_argument("--limit", type=int, default=None, help="only the first N runs (for a quick check)")
    ap.add_argument("--threads", type=int, default=None, help="torch and OpenCV threads (default: theirs)")
    ap.add_argument("--filters", nargs="+", default=None, help="only the runs on these filters (to run shards side by side)")
    ap.add_argument("--only", nargs="+", default=None, metavar="LABEL", help="only the runs with these labels")
    ap.add_argument("--stem", default=None, help="output names FIGURES/STEM.{csv,md,png} (default sweep-KIND)")
    ap.add_argument("--merge", nargs="+", default=None, metavar="CSV", help="no training: merge shard CSVs")
    ap.add_argument("--accelerator", default="cpu", help="where to train: cpu or gpu (timings stay CPU)")
    args = ap.parse_args(argv)
    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps must be at least 1, got {args.steps}")
    depth_steps = args.kind == "depth-steps"
    sweep = Sweep(kind=args.kind, steps=(args.steps or DEPTH_STEPS) if depth_steps else args.steps,
                  seeds=tuple(args.seeds or (DEPTH_STEPS_SEEDS if depth_steps else [0])), repeats=args.repeats,
                  figures=Path(args.figures), limit=args.limit, threads=args.threads,
                  filters=tuple(args.filters) if args.filters else None,
                  only=tuple(args.only) if args.only else None, stem=args.stem, accelerator=args.accelerator)
    budget, out_dir = sweep.budget, sweep.figures
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--figures {out_dir} is a file, not a folder")
    if args.merge:
        rows = [r for p in args.merge for r in read_csv(Path(p))]
        write_outputs(sweep.kind, rows, budget, out_dir, sweep.stem)
        print(markdown(sweep.kind, rows, budget))
        return 0
    rows, seconds = run(sweep, pick_runs(sweep))
    print(markdown(sweep.kind, rows, budget))
    print(f"{len(rows)} runs in {seconds:.0f} s; wrote {out_dir}/{sweep.stem or 'sweep-' + sweep.kind}.{{csv,md,png}}")
    return 0


if __name__ == "__main__":
    run_cli(main)
