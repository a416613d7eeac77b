"""The studies' run ledger: each run's row appended to a CSV as it finishes, so a study is made in pieces.

A run whose key already has a row is skipped; the file is re-read before each run and each append (written
atomically), because the shards of one study, one per core, append to the same file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

from src.cli import strict_json
from src.io.tables import read_csv, write_csv

Run = tuple[str, dict[str, Any], Callable[[], dict]]  # (what to print, the row's key columns, train it -> its row)


def has_row(rows: list[dict], key: dict[str, Any], missing: dict[str, Any] | None = None) -> bool:
    """Whether a row matches every column of ``key`` (``missing``: the value of a column older rows lack)."""
    missing = missing or {}
    return any(all((r.get(k) if r.get(k) not in (None, "") else missing.get(k)) == v for k, v in key.items())
               for r in rows)


def run_missing(runs_csv: Path, runs: Iterable[Run], missing: dict[str, Any] | None = None) -> list[dict]:
    """Each run of ``runs`` without a row in ``runs_csv``: trained, printed, its row appended. The new rows."""
    new = []
    for label, key, train in runs:
        if has_row(read_csv(runs_csv) if runs_csv.exists() else [], key, missing):
            print(f"{label}: done (a row in {runs_csv})")
            continue
        row = train()
        print(strict_json(row), flush=True)
        write_csv(runs_csv, (read_csv(runs_csv) if runs_csv.exists() else []) + [row])  # another shard's rows kept
        new.append(row)
    return new
