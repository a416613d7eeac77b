"""The knobs table: one :class:`Row` per knob, its speed-up, the CSV and Markdown forms, and the GPU rows read
from ``src/bench/gpu.py``'s reports (measured elsewhere, added to the CPU rows measured here).

May import: :mod:`src.errors`, :mod:`src.io`.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Sequence

from src.errors import UserError
from src.io.tables import csv_text, markdown_table, read_csv


@dataclasses.dataclass
class Row:
    """One knob: ``baseline`` and ``with_knob`` are rates in ``measure`` (None: that run failed)."""

    device: str
    knob: str
    measure: str
    model: str
    baseline: float | None
    with_knob: float | None
    notes: str = ""


def speedup(baseline: float | None, with_knob: float | None) -> float | None:
    """``with_knob / baseline`` for rates (higher is faster); None unless both are finite and positive.

    >>> speedup(2.0, 3.0)
    1.5
    """
    if baseline is None or with_knob is None or not all(math.isfinite(v) and v > 0 for v in (baseline, with_knob)):
        return None
    return with_knob / baseline


def format_rate(value: float | None) -> str:
    """Three significant figures without exponents; ``None`` (failed or skipped: see the notes) -> ``"-"``.

    >>> format_rate(1234.5), format_rate(12.345), format_rate(0.01234), format_rate(None)
    ('1234', '12.3', '0.0123', '-')
    """
    if value is None:
        return "-"
    digits = max(0, 2 - math.floor(math.log10(abs(value)))) if value else 0
    return f"{value:.{digits}f}"


def format_speedup(row: Row) -> str:
    s = speedup(row.baseline, row.with_knob)
    return "-" if s is None else f"{s:.2f}x"


# ------------------------------------------------------------------------------------------------- the table
def gpu_rows(report: dict[str, Any]) -> list[Row]:
    """Rows from ``src/bench/gpu.py``'s JSON: each training knob set against "fp32, no knob"."""
    ips, c = report.get("train_images_per_s", {}), report.get("config", {})
    base = ips.get("fp32, no knob")
    model = f"Pix2Pix U-Net {c.get('crop', '?')}² batch {c.get('batch', '?')}"
    return [Row("GPU", name, "training img/s", model, base, value, report.get("device", ""))
            for name, value in ips.items() if name != "fp32, no knob"]


COLUMNS = ("device", "knob", "what is measured", "model", "baseline", "with knob", "speed-up (x)", "notes")


def to_csv(rows: list[Row]) -> str:
    def cell(v: float | None, fmt: str) -> str:
        return "" if v is None else format(v, fmt)

    values = [(r.device, r.knob, r.measure, r.model, cell(r.baseline, ".6g"), cell(r.with_knob, ".6g"),
               cell(speedup(r.baseline, r.with_knob), ".4g"), r.notes) for r in rows]
    return csv_text([dict(zip(COLUMNS, v)) for v in values], COLUMNS, lineterminator="\n")


def to_markdown(rows: list[Row], header: str, gpu_line: str) -> str:
    table = markdown_table(COLUMNS, [(r.device, r.knob, r.measure, r.model, format_rate(r.baseline),
                                      format_rate(r.with_knob), format_speedup(r), r.notes) for r in rows], align="llllrrrl")
    lines = [header, "", table]
    return "\n".join(lines + ["", gpu_line]) + "\n"


def cpu_rows_of(stem: Path) -> tuple[list[Row], str]:
    """The CPU rows of an earlier run (``STEM.csv``) and the first line of its ``STEM.md`` (how they were measured)."""
    csv_path, md_path = stem.with_name(stem.name + ".csv"), stem.with_name(stem.name + ".md")
    if not csv_path.is_file() or not md_path.is_file():
        raise UserError(f"--gpu-only: no earlier run at {csv_path} and {md_path} to add GPU rows to")

    def rate(v: str) -> float | None:
        return float(v) if v not in ("", None) else None

    rows = [Row(r["device"], r["knob"], r["what is measured"], r["model"], rate(r["baseline"]), rate(r["with knob"]),
                r["notes"]) for r in read_csv(csv_path, numbers=False) if r["device"] != "GPU"]
    return rows, md_path.read_text(encoding="utf-8").splitlines()[0]


def gpu_report_files(folder: str | Path = "figures") -> list[Path]:
    """``gpu-bench*.json`` in ``folder``: ``make gpu-bench``'s own report first, then the others by name."""
    return sorted(Path(folder).glob("gpu-bench*.json"), key=lambda f: (f.stem != "gpu-bench", f.name))


def gpu_reports(files: Sequence[str] | None) -> tuple[list[Row], str]:
    """The GPU rows of ``files`` (default: :func:`gpu_report_files`) that hold training rates, and the
    table's line naming their device, torch, date and file."""
    paths = [Path(f) for f in files] if files is not None else gpu_report_files()
    reports = [(f, json.loads(f.read_text())) for f in paths if f.is_file()]
    reports = [(f, r) for f, r in reports if r.get("train_images_per_s")]
    if not reports:
        return [], "GPU: not measured (no GPU lent)."
    return [row for _, r in reports for row in gpu_rows(r)], "GPU rows: " + "; ".join(
        f"{r.get('device', '?')}, torch {r.get('torch', '?')}, {r.get('date', '?')}, from {f.as_posix()}"
        for f, r in reports) + "."
