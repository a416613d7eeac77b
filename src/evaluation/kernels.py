"""What a network has learned, read from its weights: the effective kernel (the gradient of one output
pixel with respect to the input), its cosine with the true kernel, and a figure of both.

May import: :mod:`src.io`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from src.io.plots import pyplot, save_figure


def effective_kernel(net: nn.Module, size: int, channel: int = 0) -> np.ndarray:
    """The network's kernel on the RGB input around mid-gray, ``(3, size, size)``.

    For a linear network this is exactly its kernel (the gradient of one output pixel with respect to
    the input); for others it is the linearisation at a flat gray image.
    """
    radius = max(int(getattr(net, "receptive_radius", size // 2)), size // 2)
    n = 2 * radius + 1
    x = torch.full((1, 3, n, n), 0.5, requires_grad=True)
    was_training = net.training
    net.eval()
    with torch.enable_grad():
        net(x)[0, channel, radius, radius].backward()
    net.train(was_training)
    r = size // 2
    return x.grad[0, :, radius - r : radius + r + 1, radius - r : radius + r + 1].double().numpy()


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of the angle between two kernels (1 = the same up to scale).

    >>> round(cosine_similarity(np.array([1.0, 2.0]), np.array([2.0, 4.0])), 6)
    1.0
    """
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-300))


def plot_kernels(path: Path, learned: np.ndarray, true: np.ndarray, title: str) -> None:
    """Figure: for R, G, B the learned kernel above the true one, one shared colour scale."""
    plt = pyplot()
    vmax = float(max(np.abs(learned).max(), np.abs(true).max()))
    fig, axes = plt.subplots(2, 3, figsize=(8, 5.4))
    for c, name in enumerate("RGB"):
        for row, (k, label) in enumerate(((learned, "learned"), (true, "true"))):
            ax = axes[row, c]
            im = ax.imshow(k[c], cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            ax.set_title(f"{label}, {name}", fontsize=9)
            ax.set_xticks([]), ax.set_yticks([])
    fig.colorbar(im, ax=axes, fraction=0.03)
    fig.suptitle(title)
    save_figure(fig, path)
