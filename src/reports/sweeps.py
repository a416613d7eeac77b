"""The size sweep's figure (``src.studies.sweep`` writes it; ``make figures`` redraws it) and question 7's depth
figure (``src.studies.depth table`` draws it)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from src.io.plots import pyplot, save_figure

# Shared by the sweeps (src.studies.sweep runs them) and their figures, which make figures redraws from the CSVs.
TARGET_DB = 45.0  # the Sobel quality bar: the size figure's line and the size table's "smallest network at"


def plot_sweep(kind: str, rows: list[dict], path: Path, target_db: float = TARGET_DB) -> None:
    """The size sweep's figure (``kind="size"``): test PSNR against parameters, the ``target_db`` line drawn."""
    if kind != "size":
        raise ValueError(f"no figure for a {kind!r} sweep (question 7's depth: plot_depth)")
    fig, ax = pyplot().subplots(figsize=(7, 4.2))
    for model, marker in (("compact", "o"), ("can", "s"), ("autoencoder", "^")):
        pts = [r for r in rows if r["model"] == model]
        if not pts:
            continue
        ax.scatter([r["params"] for r in pts], [r["psnr"] for r in pts], marker=marker, s=40, label=model)
        for r in pts:
            ax.annotate(r["label"], (r["params"], r["psnr"]), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.axhline(target_db, color="gray", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_title("Sobel: test PSNR against model size (equal CPU budget)")
    _finish(fig, ax, "test PSNR (dB)", path)


def plot_depth(runs: list[dict], shipped: dict[str, float], path: Path) -> None:
    """Question 7's figure: validation PSNR of the width-24 CAN against its receptive field, per operator, mean and
    sd over seeds, each operator's shipped low-resolution model (``shipped``: its PSNR) a dashed line of its colour."""
    fig, ax = pyplot().subplots(figsize=(7, 4.2))
    for flt in dict.fromkeys(r["filter"] for r in runs):
        by_rf: dict[int, list[float]] = {}
        for r in runs:
            if r["filter"] == flt and str(r["variant"]).startswith("depth"):
                by_rf.setdefault(int(r["receptive_field"]), []).append(float(r["val_psnr"]))
        rf = sorted(by_rf)
        sd = [float(np.std(by_rf[k], ddof=1)) if len(by_rf[k]) > 1 else 0.0 for k in rf]
        line = ax.errorbar(rf, [float(np.mean(by_rf[k])) for k in rf], yerr=sd, fmt="o-", capsize=3, label=flt)
        if flt in shipped:
            ax.axhline(shipped[flt], color=line[0].get_color(), ls="--", lw=1)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("receptive field (px): CAN width 24, depth 3, 5, 7")
    ax.set_title("Deeper = wider context (equal steps; dashed: the shipped bilateral grid)")
    _finish(fig, ax, "validation PSNR (dB), 7 photos", path)


def _finish(fig, ax, ylabel: str, path: Path) -> None:
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)
