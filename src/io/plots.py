"""Figures: matplotlib without a display, saved as PNG through the one atomic writer.

May import: :mod:`src.io.files`. matplotlib is imported on first use (start-up speed).
"""
from __future__ import annotations

import io
import os

from src.io.files import atomic_write_bytes


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib  # start-up: matplotlib only when called

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # start-up: matplotlib only when called

    return plt


def save_figure(fig, path: str | os.PathLike, dpi: int = 80) -> None:
    """Write ``fig`` as a PNG atomically and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())
