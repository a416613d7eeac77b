"""Filters by name: one registry shared by the CLI, the notebooks and the demo."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from src.errors import UserError

ReferenceFn = Callable[[np.ndarray], np.ndarray]
TorchFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Filter:
    """An image operator we learn.

    Calling it runs the reference implementation: RGB uint8 ``(H, W, 3)`` -> float32 ``(H, W)``
    (or ``(H, W, C)``) in [0, 1]. ``torch`` (optional) is a batched twin on any device:
    float ``(B, 3, H, W)`` in [0, 1] -> ``(B, C, H, W)``, used to compute targets on the fly.
    """

    name: str
    params: dict[str, Any]
    reference: ReferenceFn
    torch_fn: TorchFn | None = None
    out_channels: int = 1
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        rgb = check_rgb_uint8(rgb)
        out = self.reference(rgb)
        return out

    def torch(self, x: torch.Tensor) -> torch.Tensor:
        """Batched target on the tensor's device; falls back to the reference per image."""
        check_batch(x)
        if self.torch_fn is not None:
            return self.torch_fn(x)
        outs = []
        for img in x:
            rgb = (img.permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
            out = self.reference(rgb)
            out = out[None] if out.ndim == 2 else out.transpose(2, 0, 1)
            outs.append(torch.from_numpy(np.ascontiguousarray(out)))
        return torch.stack(outs).to(x.device, x.dtype)

    @property
    def key(self) -> str:
        """A stable name for this filter and its parameters (for file names and cache keys)."""
        if "key" in self.extra:  # filters whose parameters are paths choose a shorter, file-safe key
            return self.extra["key"]
        if not self.params:
            return self.name
        parts = [f"{k}={self.params[k]}" for k in sorted(self.params)]
        return self.name + "(" + ",".join(parts) + ")"


_REGISTRY: dict[str, tuple[Callable[..., Filter], str]] = {}


# Registers a "module:function" name on first use; set by src.filters.user, which builds on this module.
_SPEC_RESOLVER: Callable[[str], None] | None = None


def set_spec_resolver(resolve: Callable[[str], None]) -> None:
    """How ``get_filter`` registers a ``module:function`` name it does not know yet."""
    global _SPEC_RESOLVER
    _SPEC_RESOLVER = resolve


def register(name: str, description: str = "") -> Callable[[Callable[..., Filter]], Callable[..., Filter]]:
    """Register a filter factory ``f(**params) -> Filter`` under ``name``."""

    def wrap(factory: Callable[..., Filter]) -> Callable[..., Filter]:
        _REGISTRY[name] = (factory, description or (factory.__doc__ or "").strip().splitlines()[0])
        return factory

    return wrap


def available() -> dict[str, str]:
    """Registered filter names with their one-line descriptions."""
    return {name: desc for name, (_, desc) in sorted(_REGISTRY.items())}


def get_filter(name: str, **params: Any) -> Filter:
    """Build the filter registered as ``name`` with ``params``.

    >>> f = get_filter("sobel")
    >>> f(np.zeros((5, 7, 3), np.uint8)).shape
    (5, 7)
    """
    if name not in _REGISTRY and ":" in name and _SPEC_RESOLVER is not None:  # "module:function" (src.filters.user)
        _SPEC_RESOLVER(name)
    if name not in _REGISTRY:
        raise UserError(f"unknown filter {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    factory, _ = _REGISTRY[name]
    try:
        return factory(**params)
    except TypeError as exc:
        raise UserError(f"filter {name!r}: {exc}") from None


def stored_filter(name: str, params: dict[str, Any], trusted: bool | str | None = False) -> Filter:
    """The filter a data file (a checkpoint) names, without importing code on that file's word.

    A ``module:function`` name is resolved only when the user said so: ``trusted=True`` (``--trust-filter``)
    or ``trusted`` equal to the name (the same ``--filter`` given on the command line). Registered
    filters are built as usual.
    """
    if not isinstance(name, str) or not isinstance(params, dict):
        raise UserError(f"stored filter must be a name and a dict of parameters, got {name!r}, {params!r}")
    if name not in _REGISTRY and ":" in name and trusted is not True and trusted != name:
        raise UserError(f"filter {name!r} is code named inside the checkpoint and is not imported on its word; "
                        f"if you trust it, pass --trust-filter (or --filter {name})")
    return get_filter(name, **params)


def check_rgb_uint8(rgb: np.ndarray) -> np.ndarray:
    if not isinstance(rgb, np.ndarray):
        raise UserError(f"expected a numpy RGB image, got {type(rgb).__name__}")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise UserError(f"expected an RGB image of shape (H, W, 3), got shape {rgb.shape}")
    if rgb.dtype != np.uint8:
        raise UserError(f"expected an RGB image of dtype uint8, got {rgb.dtype}")
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise UserError(f"expected an image with height and width >= 1, got shape {rgb.shape}")
    return rgb


def check_batch(x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise UserError(f"expected a float batch of shape (B, 3, H, W), got {shape}")
    if not x.is_floating_point():
        raise UserError(f"expected a float batch in [0, 1], got dtype {x.dtype}")
    return x
