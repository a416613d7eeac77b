"""The size and depth sweeps' figures (``src.studies.sweep`` writes them; ``make figures`` redraws them)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from src.io.plots import pyplot, save_figure

# Shared by the sweeps (src.studies.sweep runs them) and their figures, which make figures redraws from the CSVs.
TARGET_DB = 45.0  # the Sobel quality bar: the size figure's line and the size table's "smallest network at"
DEPTH_WIDTH = 8  # the CAN width of the depth sweeps


def plot_sweep(kind: str, rows: list[dict], path: Path, target_db: float = TARGET_DB, depth_width: int = DEPTH_WIDTH) -> None:
    """A sweep's figure: test PSNR against parameters (``kind="size"``, the ``target_db`` line drawn) or against
    the CAN's receptive field per filter, mean and sd over seeds (``"depth"``, ``"depth-steps"``)."""
    fig, ax = pyplot().subplots(figsize=(7, 4.2))
    if kind == "size":
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
    else:
        for flt in dict.fromkeys(r["filter"] for r in rows):
            by_rf: dict[int, list[float]] = {}
            for r in rows:
                if r["filter"] == flt:
                    by_rf.setdefault(int(r["receptive_field"]), []).append(float(r["psnr"]))
            rf = sorted(by_rf)
            mean = [float(np.mean(by_rf[k])) for k in rf]
            sd = [float(np.std(by_rf[k], ddof=1)) if len(by_rf[k]) > 1 else 0.0 for k in rf]
            ax.errorbar(rf, mean, yerr=sd, fmt="o-", capsize=3, label=flt)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("receptive field (px), CAN depth 3..7")
        budget_words = "equal steps, mean ± sd over seeds" if kind == "depth-steps" else "equal CPU budget"
        ax.set_title(f"CAN width {depth_width}: deeper = wider context ({budget_words})")
    ax.set_ylabel("test PSNR (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)
