"""``make results``: every table and figure the README, the guide and ``docs/results.md`` quote, regenerated from
the current code and the committed checkpoints, in pieces.

    python -m src.reports.results --list                  # the pieces, their outputs, cores and minutes
    python -m src.reports.results [--only bench sweeps]   # run them (all by default); make results ONLY="..."
    python -m src.reports.results --force --only figures  # run a piece again although it finished at this commit

Each piece is one study or benchmark, run as its own process by the command that :data:`PIECES` names (the same
line the docs quote beside its table). Pieces that train (``cores="one"``) run side by side, each pinned with
``taskset`` to one core and one thread; a piece that shards itself over the cores (``"all"``) or that times
anything (``"alone"``: a benchmark must not share the machine) runs with nothing beside it. Resumable: each finished
piece is recorded in ``runs/results/state.json`` with the commit it ran at, and a later call skips the pieces
finished at the current commit (a crash or a kill loses only the pieces running); the studies inside a piece resume
their own runs where they can. A progress line is printed as each piece starts and ends; each piece's output goes
to ``runs/results/<piece>.log``. A piece that fails is named with its log's last line; the rest go on.

Files under ``figures/`` that no piece makes are listed in :data:`OTHER_SOURCES` with what does make them (the
shipped checkpoints' own training logs, GPU-only runs, notebooks); a test fails on a committed figure in neither.
"""
from __future__ import annotations

import argparse
import fnmatch
import glob
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from src.cli import run_cli
from src.errors import UserError
from src.io.files import atomic_write_bytes
from src.io.tables import commit_id, markdown_table


@dataclass(frozen=True)
class Piece:
    """One study or benchmark: ``commands`` (shell words, ``{python}`` for this interpreter) run in order from the
    repository root; ``outputs``: the ``figures/`` files it writes (globs); ``minutes``: its estimate on the 2-core
    build machine (one core for ``cores="one"``); ``cores``: ``"one"``, ``"all"`` or ``"alone"`` (see the module)."""

    name: str
    commands: tuple[str, ...]
    outputs: tuple[str, ...]
    minutes: int
    cores: str = "one"


T1 = "--threads 1"
SPREAD = ("random random-nonlinear sobel scharr laplacian canny emboss gaussian box median bilateral unsharp "
          "stylization detail-enhance edge-preserving pencil-sketch")
PIECES: tuple[Piece, ...] = (
    Piece("evaluate", tuple(f"{{python}} -m src.evaluation.evaluate --checkpoint models/{name}.ckpt"
                            for name in ("sobel", "autoencoder", "pix2pix", "pix2pix-photos", "pix2pix-photos-l1")),
          ("figures/eval-sobel.*", "figures/eval-autoencoder.*", "figures/eval-pix2pix.*",
           "figures/eval-pix2pix-photos.*", "figures/eval-pix2pix-photos-l1.*"), 3),
    Piece("figures", ("{python} -m src.reports.figures",),
          ("figures/sobel_examples.png", "figures/zoo_examples.png", "figures/border_error.png", "figures/tiles.png",
           "figures/curves.png", "figures/speed.png", "figures/kernel-compact-random.png"), 2),
    Piece("quantize", ("{python} -m src.studies.quantize",), ("figures/quantize.*",), 3),
    # the first of the three starts the table afresh, the next two add their rows (--resume keeps the rows present)
    Piece("spread", (f"{{python}} -m src.studies.spread --models can --filters {SPREAD}",
                     f"{{python}} -m src.studies.spread --resume --models autoencoder --filters {SPREAD}",
                     "{python} -m src.studies.spread --resume --models compact --filters sobel edge-preserving"),
          ("figures/spread.*",), 360),
    Piece("sweeps", (f"{{python}} -m src.studies.sweep size {T1}",), ("figures/sweep-size.*",), 12),
    Piece("ablation-gan", (f"{{python}} -m src.studies.ablation_gan --arms l1 gan gan-l10 --seeds 0 1 2 --batches 600 "
                           f"{T1}",), ("figures/ablation-gan.*",), 25),
    Piece("zoo", (f"{{python}} -m src.studies.zoo --repeats 3 {T1}",), ("figures/zoo.*", "figures/kernel-*-*.png"), 60),
    Piece("bench", ("{python} -m src.bench.speed", "{python} -m src.bench.huge"),
          ("figures/bench.*", "figures/huge.md"), 12, "alone"),
    Piece("knobs", ("{python} -m src.bench.knobs",
                    "{python} -m src.bench.knobs --threads 1 --out figures/knobs-1thread",
                    "{python} -m src.bench.knobs --only threads --out figures/knobs-threads"),
          ("figures/knobs.*", "figures/knobs-1thread.*", "figures/knobs-threads.*"), 25, "alone"),
    Piece("bench-loader", ("{python} -m src.bench.loader",), ("figures/loader.md",), 8, "alone"),
    Piece("teach-target", ("{python} -m src.studies.teach_target",), ("figures/teach.*",), 15, "alone"),
    Piece("soak", ("{python} -m src.demo.soak --out figures/soak.md",), ("figures/soak.md",), 20, "alone"),
    # the operators issue's studies: they shard themselves over the cores (make's targets), and count apart
    Piece("operators", ("make -s operators PYTHON={python}",), ("figures/operators*",), 150, "all"),
    Piece("grid-size", ("make -s grid-size PYTHON={python}",), ("figures/grid-size*",), 60, "all"),
    Piece("depth", ("make -s depth PYTHON={python}",), ("figures/depth*",), 135, "all"),
)
# Committed files under figures/ that no piece makes, and what does.
OTHER_SOURCES: dict[str, str] = {
    "figures/curves-*.csv": "the shipped compact net's and autoencoder's training logs (simple_main.ipynb with SHIP = "
                            "True, or make train / make train-autoencoder)",
    "figures/simple_*.png": "simple_main.ipynb with SHIP = True",
    "figures/pix2pix-*": "the shipped Pix2Pix runs' logs and main.ipynb's figures (make train-pix2pix-cpu, "
                         "make train-pix2pix-photos, main.ipynb with SHIP = True)",
    "figures/eval-pix2pix-*.csv": "the Pix2Pix photo models' evaluations, the commands beside them in docs/results.md",
    "figures/gpu-*": "a lent GPU only: make gpu-bench, then python -m src.bench.gpu --summarize",
    "figures/gradio.png": "the browser tests' screenshots (make screenshot)",
    "figures/teach.png": "the browser tests' screenshots (make screenshot)",
    "figures/sweep-size-seeds.*": "history: the sweep size --seeds runs quoted in docs/results.md with their commands",
    "figures/sweep-separable.*": "history: the sweep size --only runs quoted in docs/results.md with their commands",
    "figures/zoo-a.csv": "history: the 60-second zoo at commit 73bcaf2 (docs/results.md)",
    "figures/zoo-b.csv": "history: the 60-second zoo at commit 73bcaf2 (docs/results.md)",
    "figures/sweep-depth.*": "history: the depth sweep at equal time, commit 73bcaf2 (docs/results.md, question 7)",
    "figures/sweep-depth-steps.*": "history: the depth sweep at equal steps on 64-px crops, git checkout 13eba76 "
                                   "(docs/results.md, question 7)",
}
STATE = Path("runs/results/state.json")


def source_of(path: str) -> str | None:
    """The piece (``piece NAME``) or other source that makes the committed figure ``path``; None if nothing does."""
    for piece in PIECES:
        if any(fnmatch.fnmatch(path, g) for g in piece.outputs):
            return f"piece {piece.name}"
    return next((what for g, what in OTHER_SOURCES.items() if fnmatch.fnmatch(path, g)), None)


def choose(only: Sequence[str] | None) -> list[Piece]:
    if not only:
        return list(PIECES)
    names = {p.name: p for p in PIECES}
    unknown = [n for n in only if n not in names]
    if unknown:
        raise UserError(f"--only: no piece named {', '.join(unknown)} (the pieces: {', '.join(names)})")
    return [names[n] for n in dict.fromkeys(only)]


def read_state(path: Path) -> dict:
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a results state file ({exc}); remove it to start again") from None
    return state if isinstance(state, dict) else {}


def _command_argv(line: str, core: int | None) -> list[str]:
    argv = shlex.split(line.format(python=shlex.quote(sys.executable)))
    return (["taskset", "-c", str(core)] if core is not None else []) + argv


def _start(piece: Piece, core: int | None, log_dir: Path) -> subprocess.Popen:
    """The piece's commands in one shell, ``&&``-chained, pinned to ``core`` (None: the whole machine)."""
    script = " && ".join(shlex.join(_command_argv(line, core)) for line in piece.commands)
    env = dict(os.environ, OMP_NUM_THREADS="1") if core is not None else None
    with open(log_dir / f"{piece.name}.log", "wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(["bash", "-c", script], stdout=log, stderr=subprocess.STDOUT, env=env)


def stamp_tables(piece: Piece, since: float, head: str) -> list[Path]:
    """Append where it came from (its commands, ``head``, today) to each Markdown table of ``piece`` written since
    ``since`` (a Unix time) that does not say it already (a study that stamps its own tables says "at commit")."""
    stamped = []
    for pattern in piece.outputs:
        for path in map(Path, sorted(glob.glob(pattern))):
            if path.suffix != ".md" or path.stat().st_mtime < since or "at commit" in (text := path.read_text()):
                continue
            commands = "; ".join(f"`{c.format(python='python')}`" for c in piece.commands)
            line = (f"Made by {commands} (`make results ONLY={piece.name}`) at commit {head}, "
                    f"{time.strftime('%Y-%m-%d')}.")
            atomic_write_bytes(path, (text.rstrip("\n") + "\n\n" + line + "\n").encode())
            stamped.append(path)
    return stamped


def _last_line(path: Path) -> str:
    lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()] if path.exists() else []
    return lines[-1].strip() if lines else "(no output)"


def run(pieces: Sequence[Piece], state_path: Path = STATE, cores: Sequence[int] | None = None, force: bool = False,
        say=print) -> list[str]:
    """Run ``pieces`` (skipping those recorded in ``state_path`` at this commit unless ``force``), the one-core ones
    side by side on ``cores`` (default: this process's), the others alone; returns the names of those that failed."""
    cores = list(cores if cores is not None else sorted(os.sched_getaffinity(0)))
    head, state = commit_id(), read_state(state_path)
    log_dir = state_path.parent
    log_dir.mkdir(parents=True, exist_ok=True)
    todo = [p for p in pieces if force or state.get(p.name, {}).get("commit") != head]
    # the one-core pieces first, longest first (the cores end together), then the others in the order given
    todo.sort(key=lambda p: (p.cores != "one", -p.minutes if p.cores == "one" else 0))
    for p in pieces:
        if p not in todo:
            say(f"results: {p.name} finished at {head} ({state[p.name]['date']}): skipped (--force runs it again)")
    total, done, failed, t0 = len(todo), 0, [], time.monotonic()
    running: dict[int | None, tuple[Piece, subprocess.Popen, float, float]] = {}

    def progress(event: str) -> None:
        left = sum(p.minutes for p in todo) + sum(r[0].minutes for r in running.values())
        minutes = (time.monotonic() - t0) / 60
        say(f"[results {done}/{total} done, {minutes:.0f} min, ~{left} min of pieces left] {event}")

    def finish(slot: int | None) -> None:
        nonlocal done
        piece, proc, started, wall = running.pop(slot)
        rc = proc.wait()
        minutes = (time.monotonic() - started) / 60
        done += 1
        if rc == 0:
            stamp_tables(piece, wall - 1, head)
            state[piece.name] = {"commit": head, "date": time.strftime("%Y-%m-%d %H:%M"), "minutes": round(minutes, 1)}
            atomic_write_bytes(state_path, (json.dumps(state, indent=1, sort_keys=True) + "\n").encode())
            progress(f"{piece.name} finished in {minutes:.1f} min")
        else:
            failed.append(piece.name)
            progress(f"{piece.name} FAILED (exit {rc}): {_last_line(log_dir / f'{piece.name}.log')}")

    while todo or running:
        free = [c for c in cores if c not in running]
        nxt = todo[0] if todo else None
        if nxt is not None and nxt.cores == "one" and free and None not in running:
            todo.pop(0)
            running[free[0]] = (nxt, _start(nxt, free[0], log_dir), time.monotonic(), time.time())
            progress(f"{nxt.name} started on core {free[0]}")
        elif nxt is not None and nxt.cores != "one" and not running:
            todo.pop(0)
            running[None] = (nxt, _start(nxt, None, log_dir), time.monotonic(), time.time())
            progress(f"{nxt.name} started on the whole machine ({nxt.cores})")
        else:  # wait for a running piece to end
            while not (ended := [s for s, r in running.items() if r[1].poll() is not None]):
                time.sleep(0.2)
            for slot in ended:
                finish(slot)
    return failed


def pieces_markdown() -> str:
    """The pieces as docs/results.md shows them (a test keeps the two equal)."""
    cores = {"one": "one, pinned", "all": "all (shards itself)", "alone": "all, nothing beside it (timed)"}
    rows = [[p.name, " ".join(f"`{o}`" for o in p.outputs), cores[p.cores], p.minutes] for p in PIECES]
    return markdown_table(["piece", "writes", "cores", "minutes (estimate)"], rows, align="lllr")


def listing(pieces: Sequence[Piece], state: dict) -> str:
    lines = []
    for p in pieces:
        last = state.get(p.name)
        ran = f"; last {last['minutes']} min at {last['commit']} ({last['date']})" if last else ""
        lines.append(f"{p.name}: ~{p.minutes} min, cores {p.cores}{ran} -> {' '.join(p.outputs)}")
        lines += [f"    {c.format(python='python')}" for c in p.commands]
    one = sum(p.minutes for p in pieces if p.cores == "one")
    rest = sum(p.minutes for p in pieces if p.cores != "one")
    lines.append(f"about {one} min on one core + {rest} min on the whole machine")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m src.reports.results", description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", metavar="PIECE",
                    help="these pieces only (default: all; the one-core ones run first, longest first)")
    ap.add_argument("--list", action="store_true", help="print the pieces and their commands, run nothing")
    ap.add_argument("--force", action="store_true", help="run pieces that already finished at this commit")
    ap.add_argument("--cores", type=int, nargs="+", help="cores for the one-core pieces (default: this process's)")
    ap.add_argument("--state", type=Path, default=STATE, help=f"the progress record (default {STATE})")
    args = ap.parse_args(argv)
    pieces = choose(args.only)
    if args.list:
        print(listing(pieces, read_state(args.state)))
        return 0
    failed = run(pieces, args.state, args.cores, args.force)
    if failed:
        raise UserError(f"{len(failed)} piece(s) failed: {', '.join(failed)} (their logs: {args.state.parent}/)")
    return 0


if __name__ == "__main__":
    run_cli(main)
