"""Seeded random filters: a random linear kernel, and a random chain of zoo operators.

Both draw from ``numpy.random.default_rng(seed)`` with integer draws only (``integers``, ``choice``
over a fixed list), whose streams numpy keeps identical across platforms: the same seed gives the same
filter, bit for bit, on any machine.

>>> from src.filters import get_filter
>>> f = get_filter("random", seed=3, size=5)
>>> f.extra["kernel"].shape, f(np.zeros((4, 6, 3), np.uint8)).shape
((5, 5), (4, 6))
"""
from __future__ import annotations

import numpy as np

from src.errors import UserError
from src.filters.linear import gray_linear_cv, gray_linear_torch, rgb_kernel
from src.filters.registry import Filter, get_filter, register

# Operators a random chain may use (cheap enough to compute training targets in the loader), with the
# parameter choices it draws from.
CHAIN_OPERATORS: dict[str, list[dict]] = {
    "sobel": [{}],
    "scharr": [{}],
    "laplacian": [{"ksize": 1}, {"ksize": 3}],
    "emboss": [{}],
    "gaussian": [{"ksize": 3}, {"ksize": 5}],
    "box": [{"ksize": 3}, {"ksize": 5}],
    "median": [{"ksize": 3}, {"ksize": 5}],
    "unsharp": [{"sigma": 1.0}, {"sigma": 2.0}],
    "bilateral": [{"d": 5}, {"d": 9}],
}


def _check_seed(seed: object) -> int:
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def random_kernel(seed: int, size: int = 3) -> np.ndarray:
    """The ``size x size`` kernel of ``random(seed)``: integers in [-100, 100] / 100, float64, not all zero.

    >>> random_kernel(0, 3).shape
    (3, 3)
    """
    _check_seed(seed)
    if size not in (3, 5):
        raise UserError(f"random filter size must be 3 or 5, got {size!r}")
    rng = np.random.default_rng(seed)
    k = np.zeros((size, size))
    while not k.any():
        k = rng.integers(-100, 101, (size, size)).astype(np.float64) / 100.0
    return k


@register("random", "Seeded random k x k linear kernel on the gray image, affine-scaled to exactly [0, 1] (no clipping)")
def make_random(seed: int = 0, size: int = 3) -> Filter:
    kernel = random_kernel(seed, size)
    return Filter(
        name="random", params={"seed": int(seed), "size": size},
        reference=lambda rgb: gray_linear_cv(rgb, kernel), torch_fn=lambda x: gray_linear_torch(x, kernel),
        out_channels=1, description=f"random {size}x{size} linear kernel (seed {seed})",
        extra={"kernel": kernel, "rgb_kernel": rgb_kernel(kernel)},
    )


def random_chain(seed: int) -> list[tuple[str, dict]]:
    """The 2-3 ``(operator, params)`` steps of ``random-nonlinear(seed)``, applied left to right."""
    rng = np.random.default_rng(_check_seed(seed))
    names = sorted(CHAIN_OPERATORS)
    steps = int(rng.integers(2, 4))
    picks = rng.choice(len(names), size=steps, replace=False)
    chain = []
    for i in picks:
        options = CHAIN_OPERATORS[names[int(i)]]
        chain.append((names[int(i)], dict(options[int(rng.integers(0, len(options)))])))
    return chain


def _as_rgb_uint8(out: np.ndarray) -> np.ndarray:
    u8 = np.round(out * 255.0).astype(np.uint8)
    return np.repeat(u8[..., None], 3, axis=2) if u8.ndim == 2 else u8


@register("random-nonlinear", "Seeded random chain of 2-3 zoo operators (8-bit between steps)")
def make_random_nonlinear(seed: int = 0) -> Filter:
    chain = random_chain(seed)
    steps = [get_filter(name, **params) for name, params in chain]

    def reference(rgb: np.ndarray) -> np.ndarray:
        out = steps[0](rgb)
        for step in steps[1:]:  # each step sees an 8-bit RGB image, as a user chaining tools would
            out = step(_as_rgb_uint8(out))
        return out

    text = " -> ".join(f.key for f in steps)
    return Filter(name="random-nonlinear", params={"seed": int(seed)}, reference=reference,
                  out_channels=steps[-1].out_channels, description=text, extra={"chain": chain})
