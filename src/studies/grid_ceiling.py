"""How well any bilateral grid can imitate an operator: a grid fitted directly to one photo's target.

    python -m src.studies.grid_ceiling --filter l0-smooth [--cell 8] [--bins 16] [--photo PATH] [--steps 300]

No network: the grid's coefficients themselves are optimised (Adam, MSE) for one photo, the guide fixed to BT.601
luma, sliced as :class:`~src.models.bilateral_grid.BilateralGridNet` slices. The PSNR it reaches bounds what a
trained model of that grid size can do on that photo (a trained model must also predict the grid, from the photo
alone); beside it, the trivial answer's. Default photo: the first validation photo (never a test one), its top-left
768 x 512.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from src.cli import run_cli
from src.download.catalog import folder_dataset
from src.errors import UserError
from src.evaluation.metrics import psnr
from src.filters import get_filter
from src.io.images import read_rgb
from src.models.bilateral_grid import GRAY, slice_grid
from src.threads import set_threads


def fit_grid(rgb: np.ndarray, target: np.ndarray, cell: int, bins: int, steps: int) -> np.ndarray:
    """The prediction of a grid fitted to ``target`` (RGB float) for ``rgb`` (uint8), clamped to [0, 1]."""
    torch.manual_seed(0)
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    t = torch.from_numpy(target).permute(2, 0, 1)[None]
    h, w = rgb.shape[:2]
    gh, gw = -(-h // cell), -(-w // cell)
    start = torch.zeros(3, 4)
    start[:, :3] = torch.eye(3)
    grid = start.flatten()[None, :, None, None, None].repeat(1, 1, bins, gh, gw).requires_grad_(True)
    guide = (x * torch.tensor(GRAY)[None, :, None, None]).sum(1, keepdim=True)
    opt = torch.optim.Adam([grid], lr=0.05)

    def out() -> torch.Tensor:
        c = slice_grid(grid, guide, (0, 0), (gh * cell, gw * cell)).view(1, 3, 4, h, w)
        return (c[:, :, :3] * x[:, None]).sum(2) + c[:, :, 3]

    for i in range(steps):
        opt.zero_grad()
        ((out() - t) ** 2).mean().backward()
        opt.step()
        if i == steps // 2:
            opt.param_groups[0]["lr"] = 0.01
    with torch.no_grad():
        return out().clamp(0, 1)[0].permute(1, 2, 0).numpy()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m src.studies.grid_ceiling", description=__doc__.splitlines()[0])
    ap.add_argument("--filter", required=True, help="an RGB-out filter by name")
    ap.add_argument("--cell", type=int, default=8)
    ap.add_argument("--bins", type=int, default=16)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--photo", type=Path, default=None, help="default: the first photo of data/raw/photos/val")
    args = ap.parse_args(argv)
    set_threads(1)
    path = args.photo or sorted((folder_dataset("photos") / "val").iterdir())[0]
    rgb = np.ascontiguousarray(read_rgb(path)[:512, :768])
    flt = get_filter(args.filter)
    target = flt(rgb)
    if target.ndim != 3:
        raise UserError(f"{args.filter} has a gray output; this fits RGB grids")
    pred = fit_grid(rgb, target, args.cell, args.bins, args.steps)
    print(f"{flt.key} on {path.name} ({rgb.shape[1]}x{rgb.shape[0]}): grid of {args.cell}-px cells x {args.bins} "
          f"bins fitted: {psnr(pred, target):.2f} dB; the input: {psnr(rgb.astype(np.float32) / 255, target):.2f} dB")
    return 0


if __name__ == "__main__":
    run_cli(main)
