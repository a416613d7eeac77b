"""The size sweep of the README's question 5, a list of zoo runs (same budget, same data):

    python -m src.studies.sweep size [--steps N] [--seeds 0 1 2]   # params vs PSNR on Sobel
                                                                  #   -> figures/sweep-size.{csv,md,png}

Budgets are optimiser steps (default: the zoo's per-model ``ZOO_STEPS``), the same on any machine.

``size`` trains compact nets (kernel 3/5/7, RGB bank, hidden layer), CANs of growing width and depth
and the seed autoencoder on the Sobel target and plots test PSNR against parameter count, marking the
smallest model that reaches 45 dB. Question 7 (depth) has its own study on photographs, :mod:`src.studies.depth`;
the depth sweeps that were here (64-px crops at width 8 on the embedded pictures) are history in docs/results.md.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from src.cli import run_cli, strict_json
from src.errors import UserError
from src.io.files import atomic_write_bytes
from src.io.tables import markdown_table, mean_sd, read_csv, write_csv
from src.reports.sweeps import TARGET_DB, plot_sweep

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


def size_runs() -> list[tuple[str, dict, str, dict, str]]:
    """(filter, filter params, model, network options, label) for the size sweep."""
    return [("sobel", {}, m, a, label) for m, a, label in SIZE_RUNS]


def seed_table(rows: list[dict], budget: str, how: str) -> str:
    """Mean ± sd over seeds per (filter, network); ``how``: the footnote's words on how each run trains."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["filter"], r["label"]), []).append(r)
    table = [(flt, label, runs[0]["params"], len(runs), mean_sd([r["psnr"] for r in runs], 2),
              mean_sd([r["ssim"] for r in runs], 3), "/".join(sorted({str(r["steps"]) for r in runs})),
              f"{runs[0]['net_mps']:.2f}") for (flt, label), runs in groups.items()]
    header = ["filter", "network", "params", "seeds", "test PSNR (dB)", "SSIM", "steps", "net MP/s"]
    lines = [markdown_table(header, table, align="llrrrrrr"), ""]
    lines.append(f"Each run: {budget} on the embedded data ({how}), test split at native resolution, borders included; "
                 "mean ± sd (sample) over seeds.")
    return "\n".join(lines) + "\n"


def smallest_reaching(rows: list[dict], target: float = TARGET_DB) -> dict | None:
    """The row with the fewest parameters whose test PSNR is at least ``target`` (None if none)."""
    ok = [r for r in rows if r["psnr"] >= target]
    return min(ok, key=lambda r: r["params"]) if ok else None


def markdown(kind: str, rows: list[dict], budget: str) -> str:
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
    kind: str  # size
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
    runs = size_runs()[: sweep.limit]
    if sweep.filters:
        runs = [r for r in runs if r[0] in sweep.filters]
        if not runs:
            raise UserError(f"no {sweep.kind} runs on {', '.join(sweep.filters)}")
    if sweep.only:
        runs = [r for r in runs if r[4] in sweep.only]
        if not runs:
            raise UserError(f"no {sweep.kind} run is labelled {' or '.join(map(repr, sweep.only))}")
    return runs


def sweep_row(sweep: Sweep, spec: tuple[str, dict, str, dict, str], seed: int) -> dict:
    """Train and measure one run of the sweep with ``seed``: its row of the table."""
    from src.studies.zoo import run_one  # start-up: the zoo brings torch; --help answers without it

    flt, params, model, net_args, label = spec
    tag = "-" + "-".join(f"{k}{v}" for k, v in net_args.items()) if net_args else ""
    tag += f"-seed{seed}" if seed else ""
    row = run_one(flt, params, model, sweep.steps, sweep.figures, sweep.repeats, net_args=net_args, tag=tag,
                  accelerator=sweep.accelerator, threads=sweep.threads, seed=seed)
    row["label"] = label
    if model == "can":
        from src.models.can import dilations  # start-up: torch; --help answers without it

        row["receptive_field"] = 2 * sum(dilations(net_args["depth"])) + 1
    row["seed"] = seed
    return row


def run(sweep: Sweep, runs: list[tuple[str, dict, str, dict, str]]) -> tuple[list[dict], float]:
    """Every run over every seed: the rows and the seconds they took. The outputs are rewritten after
    each row, so a sweep cut short keeps what it measured."""
    import src.studies.zoo  # noqa: F401 (start-up: torch and Lightning, imported before the clock starts)

    rows, t0 = [], time.time()
    for spec, seed in ((r, s) for r in runs for s in sweep.seeds):
        row = sweep_row(sweep, spec, seed)
        rows.append(row)
        print(strict_json(row), flush=True)
        write_outputs(sweep.kind, rows, sweep.budget, sweep.figures, sweep.stem)
    return rows, time.time() - t0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m src.studies.sweep", description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=("size",), help="size (question 7's depth: python -m src.studies.depth)")
    ap.add_argument("--steps", type=int, default=None, help="optimiser steps per run (default: the zoo's per model)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (default: 0)")
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
    sweep = Sweep(kind=args.kind, steps=args.steps, seeds=tuple(args.seeds), repeats=args.repeats,
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
