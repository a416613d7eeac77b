"""``make figures``: every figure the README shows, regenerated into ``figures/``.

    python -m src.reports.figures [--out figures] [--only NAME ...]

Cheap figures are computed from the shipped checkpoints and the embedded data (target examples, test
grids, border error, tiled vs whole). Figures of long runs are re-plotted from the CSVs those runs
committed, each written by the command named in the README (training curves: ``simple_main.ipynb``;
size and depth sweeps: ``python -m src.studies.sweep``; zoo and speed: ``make zoo``,
``make knobs``). A figure whose input is missing is skipped with a note naming the command that makes it.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from src.cli import run_cli
from src.dataset.sources import load_split
from src.errors import UserError
from src.evaluation.metrics import error_by_distance
from src.io.plots import pyplot, save_figure
from src.io.tables import read_csv
from src.reports.sweeps import plot_sweep

CHECKPOINTS = {"compact": Path("models/sobel.ckpt"), "autoencoder": Path("models/autoencoder.ckpt")}
ZOO_EXAMPLES = ("sobel", "scharr", "laplacian", "canny", "median", "unsharp", "stylization", "detail-enhance",
                "edge-preserving", "pencil-sketch", "random", "random-nonlinear")


class Skip(Exception):
    """A figure's input is missing; the message names the command that makes it."""


def _finish_plot(fig, ax, path: Path, xlabel: str, ylabel: str, title: str = "") -> list[Path]:
    """Labels, grid and legend on a line plot, then write it."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)
    return [path]


def _net(kind: str):
    from src.models import load_model  # start-up: torch only when called

    if not CHECKPOINTS[kind].exists():
        raise Skip(f"{CHECKPOINTS[kind]} missing (make train / make train-autoencoder)")
    return load_model(CHECKPOINTS[kind])


def _csv(path: Path, command: str) -> list[dict]:
    if not path.exists():
        raise Skip(f"{path} missing ({command})")
    return read_csv(path, numbers=False)


def val_curve(log_rows: list[dict]) -> tuple[list[int], list[float]]:
    """``(steps, val PSNR)`` from the rows of a Lightning CSV log (``metrics.csv``) or its committed copy."""
    rows = [r for r in log_rows if r.get("val_psnr") not in (None, "")]
    return [int(r["step"]) for r in rows], [float(r["val_psnr"]) for r in rows]


def fig_target_examples(out: Path) -> list[Path]:
    """Test photos and their Sobel targets; one photo through every zoo operator."""
    from src.filters import get_filter  # start-up: torch only when called

    plt = pyplot()
    test = load_split("skimage", "test")
    sobel = get_filter("sobel")
    fig, axes = plt.subplots(2, 3, figsize=(12, 7))
    for col, im in enumerate(test[:3]):
        axes[0, col].imshow(im.rgb)
        axes[0, col].set_title(f"{im.name} {im.rgb.shape[1]}x{im.rgb.shape[0]}")
        axes[1, col].imshow(sobel(im.rgb), cmap="gray", vmin=0, vmax=1)
        axes[1, col].set_title("Sobel target")
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, out / "sobel_examples.png", dpi=70)

    rgb = test[1].rgb  # coffee: colour, edges and smooth areas
    fig, axes = plt.subplots(3, 5, figsize=(15, 7.6))
    panels = [("input", rgb)] + [(n, get_filter(n)(rgb)) for n in ZOO_EXAMPLES]
    for ax, (name, img) in zip(axes.ravel(), panels + [(None, None)] * (axes.size - len(panels))):
        ax.axis("off")
        if name is not None:
            lo, hi = (0.0, 1.0) if img.dtype != np.uint8 else (0, 255)
            p1, p99 = (float(v) for v in np.percentile(img, (1, 99)))
            if img.ndim == 2 and p99 - p1 < 0.5:  # low-contrast outputs: stretch the 1-99 % range, and say so
                lo, hi, name = p1, p99, f"{name} (shown {p1:.2f}-{p99:.2f})"
            ax.imshow(img, cmap=None if img.ndim == 3 else "gray", vmin=lo, vmax=hi)
            ax.set_title(name, fontsize=10)
    fig.tight_layout()
    save_figure(fig, out / "zoo_examples.png", dpi=60)
    return [out / "sobel_examples.png", out / "zoo_examples.png"]


def fig_test_grids(out: Path) -> list[Path]:
    """``make evaluate``'s grids and CSVs for both shipped checkpoints."""
    from src.evaluation.evaluate import (  # start-up: torch only when called
        checkpoint_filter,
        evaluate_images,
        write_grid,
        write_results,
    )

    paths = []
    for kind, name in (("compact", "sobel"), ("autoencoder", "autoencoder")):
        net = _net(kind)
        rows, mean = evaluate_images(net, checkpoint_filter(net), load_split("skimage", "test"), keep=True)
        write_results(out / f"eval-{name}.csv", rows, mean)
        write_grid(out / f"eval-{name}.png", rows, title=f"{kind}: test split, mean {mean['psnr']:.2f} dB")
        paths += [out / f"eval-{name}.csv", out / f"eval-{name}.png"]
    return paths


def fig_border_error(out: Path) -> list[Path]:
    """Mean |error| against distance to the edge, both shipped checkpoints, and their error maps."""
    from src.evaluation.evaluate import checkpoint_filter  # start-up: torch only when called
    from src.inference.predict import predict  # start-up: torch only when called

    plt = pyplot()
    test = load_split("skimage", "test")
    fig, (ax, *maps) = plt.subplots(1, 3, figsize=(16, 4.2), gridspec_kw={"width_ratios": [1.3, 1, 1]})
    for (kind, map_ax) in zip(CHECKPOINTS, maps):
        net = _net(kind)
        flt = checkpoint_filter(net)
        pairs = [(predict(net, im.rgb), flt(im.rgb)) for im in test]
        ax.semilogy(error_by_distance(pairs), marker="o", label=kind)
        err = np.abs(pairs[2][0] - pairs[2][1])[:48, :48]  # camera's top-left corner
        im = map_ax.imshow(err, cmap="inferno")
        map_ax.set_title(f"{kind}: |error|, {test[2].name} top-left 48x48", fontsize=9)
        map_ax.axis("off")
        fig.colorbar(im, ax=map_ax, fraction=0.046)
    return _finish_plot(fig, ax, out / "border_error.png", "distance to the image edge (px; 16 = 16 or more)",
                        "mean |error| (test split)")


def fig_tiles(out: Path) -> list[Path]:
    """|whole - tiled| with a halo of the receptive radius (zero) and without one (seams)."""
    from src.inference.predict import predict  # start-up: torch only when called

    plt = pyplot()
    rgb = load_split("skimage", "test")[2].rgb  # camera 512 x 512
    fig, axes = plt.subplots(2, 2, figsize=(10, 9.4))
    for row, kind in zip(axes, CHECKPOINTS):
        net = _net(kind)
        whole = predict(net, rgb)
        halo = predict(net, rgb, tile=128)
        naive = np.zeros_like(whole)
        for y in range(0, rgb.shape[0], 128):
            for x in range(0, rgb.shape[1], 128):
                naive[y : y + 128, x : x + 128] = predict(net, np.ascontiguousarray(rgb[y : y + 128, x : x + 128]))
        for ax, other, label in ((row[0], halo, "halo tiles"), (row[1], naive, "tiles without halo")):
            d = np.abs(other - whole)
            im = ax.imshow(d, cmap="inferno", vmin=0, vmax=max(float(d.max()), 1e-6))
            ax.set_title(f"{kind}: |whole - {label}|, 128 px, max {d.max():.2g}", fontsize=9)
            ax.axis("off")
            fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    save_figure(fig, out / "tiles.png")
    return [out / "tiles.png"]


def fig_curves(out: Path) -> list[Path]:
    """Validation PSNR per step of the committed runs (CSV copies of their Lightning logs)."""
    plt = pyplot()
    runs = [("compact net (reflect-101)", "curves-compact.csv"), ("seed autoencoder", "curves-autoencoder.csv"),
            ("compact net, zero padding", "curves-compact-zero-padding.csv")]
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for label, name in runs:
        ax.plot(*val_curve(_csv(out / name, "simple_main.ipynb / the padding ablation")), marker=".", label=label)
    return _finish_plot(fig, ax, out / "curves.png", "training step (batch of 32 crops, 64 x 64)",
                        "val PSNR (dB), whole images", "Sobel, 210 s CPU budget each; early stopping on val PSNR")


def fig_sweeps(out: Path) -> list[Path]:
    paths = []
    for kind in ("size",):  # the depth sweeps' figure is history (question 7: python -m src.studies.depth table)
        path = out / f"sweep-{kind}.csv"
        if not path.exists():
            raise Skip(f"{path} missing (python -m src.studies.sweep {kind})")
        plot_sweep(kind, read_csv(path), out / f"sweep-{kind}.png")
        paths.append(out / f"sweep-{kind}.png")
    return paths


def fig_speed(out: Path) -> list[Path]:
    """Network vs OpenCV reference MP/s for every zoo filter (compact and CAN), log scale."""
    plt = pyplot()
    rows = _csv(out / "zoo.csv", "make zoo")
    models = [m for m in ("compact", "can", "autoencoder") if any(r["model"] == m for r in rows)]
    filters = list(dict.fromkeys(r["filter"] for r in rows))
    by = {(r["filter"], r["model"]): r for r in rows}
    fig, ax = plt.subplots(figsize=(13, 4.6))
    width = 0.8 / (len(models) + 1)
    x = np.arange(len(filters))
    ref = [float(next(by[f, m]["ref_mps"] for m in models if (f, m) in by)) for f in filters]
    ax.bar(x, ref, width, label="OpenCV reference", color="0.6")
    for i, m in enumerate(models, 1):
        ax.bar(x + i * width, [float(by[f, m]["net_mps"]) if (f, m) in by else 0 for f in filters], width, label=m)
    ax.set_xticks(x + width * len(models) / 2, [f.split("(")[0] for f in filters], rotation=40, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("MP/s on a 1 MP photo (CPU; threads: zoo.md)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out / "speed.png")
    return [out / "speed.png"]


def fig_kernel(out: Path) -> list[Path]:
    """The random 3x3 kernel learned by the zoo's linear compact net beside the true one."""
    from src.evaluation.kernels import (  # start-up: torch only when called
        cosine_similarity,
        effective_kernel,
        plot_kernels,
    )
    from src.filters import get_filter  # start-up: torch only when called
    from src.models import load_model  # start-up: torch only when called

    flt = get_filter("random", seed=0, size=3)
    ckpt = Path("models/zoo") / f"compact-{flt.key}.ckpt"
    if not ckpt.exists():
        raise Skip(f"{ckpt} missing (make zoo)")
    true = flt.extra["rgb_kernel"]
    learned = effective_kernel(load_model(ckpt), true.shape[-1])
    plot_kernels(out / "kernel-compact-random.png", learned, true,
                 f"compact on {flt.key}: cosine {cosine_similarity(learned, true):.5f} (RGB), "
                 f"{cosine_similarity(learned.sum(0), true.sum(0)):.5f} (gray)")
    return [out / "kernel-compact-random.png"]


FIGURES: dict[str, Callable[[Path], list[Path]]] = {
    "examples": fig_target_examples, "grids": fig_test_grids, "border": fig_border_error, "tiles": fig_tiles,
    "curves": fig_curves, "sweeps": fig_sweeps, "speed": fig_speed, "kernel": fig_kernel,
}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m src.reports.figures", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="figures", help="folder for the figures (and the CSVs they are plotted from)")
    ap.add_argument("--only", nargs="+", choices=sorted(FIGURES), help="a subset of the figures")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    skipped = 0
    for name in args.only or FIGURES:
        try:
            for p in FIGURES[name](out):
                print(f"wrote {p}")
        except Skip as exc:
            skipped += 1
            print(f"skipped {name}: {exc}")
    print(f"{len(args.only or FIGURES) - skipped} figure groups written, {skipped} skipped, into {out}/")
    return 0


if __name__ == "__main__":
    run_cli(main)
