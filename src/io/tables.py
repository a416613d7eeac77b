"""Tables: rows of dicts to CSV and back (files always closed, writes atomic), and Markdown tables.

May import: :mod:`src.errors`, :mod:`src.io.files`.
"""
from __future__ import annotations

import csv
import datetime
import io
import os
import statistics
import subprocess
from pathlib import Path
from typing import Any, Iterable, Sequence

from src.errors import UserError
from src.io.files import atomic_write_bytes


def csv_text(rows: Iterable[dict[str, Any]], columns: Sequence[str] | None = None, lineterminator: str = "\r\n") -> str:
    """Rows as CSV text; ``columns`` default to the sorted union of the rows' keys (extra keys are dropped).

    >>> csv_text([{"b": 1, "a": 2}, {"a": 3}]).splitlines()
    ['a,b', '2,1', '3,']
    """
    rows = list(rows)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns or sorted({k for r in rows for k in r})), extrasaction="ignore",
                       lineterminator=lineterminator)
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_csv(path: str | os.PathLike, rows: Iterable[dict[str, Any]], columns: Sequence[str] | None = None) -> None:
    """:func:`csv_text` written atomically."""
    atomic_write_bytes(path, csv_text(rows, columns).encode())


def _number(v: str) -> Any:
    try:
        return int(v) if v.lstrip("-").isdigit() else float(v)
    except ValueError:
        return v


def read_csv(path: str | os.PathLike, numbers: bool = True) -> list[dict[str, Any]]:
    """Rows of a CSV file, empty cells dropped and (``numbers=True``) numbers parsed, ints staying ints."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no table at {path}")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not numbers:
        return rows
    return [{k: _number(v) for k, v in r.items() if v != ""} for r in rows]


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str = "") -> str:
    """A GitHub Markdown table; ``align`` has one letter per column, ``l`` or ``r`` (default: all left).

    >>> print(markdown_table(["name", "dB"], [["sobel", "87.39"]], align="lr"))
    | name | dB |
    |---|---:|
    | sobel | 87.39 |
    """
    align = align or "l" * len(header)
    if len(align) != len(header):
        raise ValueError(f"align {align!r} has {len(align)} letters for {len(header)} columns")
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
    lines = ["| " + " | ".join(map(str, header)) + " |", rule]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def mean_sd(values: Sequence[float], digits: int) -> str:
    """``12.34 ± 0.56`` (sample standard deviation), or the value alone for one run.

    >>> mean_sd([1.0, 2.0, 3.0], 2)
    '2.00 ± 1.00'
    """
    v = [float(x) for x in values]
    if len(v) < 2:
        return f"{statistics.fmean(v):.{digits}f}"
    return f"{statistics.fmean(v):.{digits}f} ± {statistics.stdev(v):.{digits}f}"


def commit_id() -> str:
    """The checkout's commit, short, and ``+changes`` when the code under ``src/`` differs from it (a table made then
    came from code that no commit holds); ``unknown`` outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--", ":/src"], capture_output=True, text=True,
                                 check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if changed else "")


def stamp() -> str:
    """Where a generated table comes from: ``at commit abc1234, 2026-12-07``."""
    return f"at commit {commit_id()}, {datetime.date.today().isoformat()}"
