"""Your own filter: any Python callable ``fn(rgb) -> image``, registered by decorator or named on the CLI.

    from src.filters import user_filter

    @user_filter("posterize")
    def posterize(rgb):                      # RGB uint8 (H, W, 3) in
        return (rgb // 64) * 64              # uint8 or float in [0, 1]; (H, W), (H, W, 1) or (H, W, 3) out

    python -m src.training.train --filter mymodule:posterize     # no decorator needed

The callable is checked once on a probe image when the filter is built, and on every call after: an
output of the wrong shape, dtype or range is reported with what it returned. uint8 outputs are
divided by 255. Keyword parameters (``--filter-param K=V``) are passed to the callable.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from src.errors import UserError
from src.filters.registry import Filter, register, set_spec_resolver

UserFn = Callable[..., np.ndarray]
RANGE_TOLERANCE = 1e-6


def check_user_output(name: str, out: Any, shape: tuple[int, int]) -> np.ndarray:
    """Validate and normalise a user callable's output to float32 ``(H, W)`` or ``(H, W, 3)`` in [0, 1]."""
    h, w = shape
    if not isinstance(out, np.ndarray):
        raise UserError(f"filter {name!r} returned {type(out).__name__}, expected a numpy array of shape ({h}, {w}) or ({h}, {w}, 3)")
    if out.ndim == 3 and out.shape[2] == 1:
        out = out[..., 0]
    if out.shape[:2] != (h, w) or out.ndim not in (2, 3) or (out.ndim == 3 and out.shape[2] != 3):
        raise UserError(f"filter {name!r} returned shape {out.shape} for an input of shape ({h}, {w}, 3); "
                        f"expected ({h}, {w}) or ({h}, {w}, 3)")
    if out.dtype == np.uint8:
        return out.astype(np.float32) / np.float32(255.0)
    if not np.issubdtype(out.dtype, np.floating):
        raise UserError(f"filter {name!r} returned dtype {out.dtype}; expected uint8, or float in [0, 1]")
    lo, hi = (float(out.min()), float(out.max())) if out.size else (0.0, 0.0)
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        raise UserError(f"filter {name!r} returned values in [{lo:.4g}, {hi:.4g}]; expected float values in [0, 1]")
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)


def _probe_image() -> np.ndarray:
    yy, xx = np.mgrid[0:13, 0:17]
    return np.stack([(xx * 15) % 256, (yy * 19) % 256, ((xx + yy) * 7) % 256], axis=2).astype(np.uint8)


def make_user_filter(name: str, fn: UserFn, params: dict[str, Any] | None = None, description: str = "") -> Filter:
    """Wrap ``fn`` as a :class:`Filter`, probing it once to learn its channels and catch a bad output early."""
    params = dict(params or {})

    def reference(rgb: np.ndarray) -> np.ndarray:
        try:
            out = fn(rgb.copy(), **params)  # a copy: a callable that writes into its input cannot corrupt ours
        except UserError:
            raise
        except Exception as exc:
            raise UserError(f"filter {name!r} raised {type(exc).__name__}: {exc}") from None
        return check_user_output(name, out, rgb.shape[:2])

    probe = reference(_probe_image())
    channels = 1 if probe.ndim == 2 else 3
    return Filter(name=name, params=params, reference=reference, out_channels=channels,
                  description=description or name)


def user_filter(name: str, description: str = "") -> Callable[[UserFn], UserFn]:
    """Decorator: register ``fn(rgb uint8 (H, W, 3), **params) -> array`` as filter ``name``."""

    def wrap(fn: UserFn) -> UserFn:
        desc = description or (fn.__doc__ or "").strip().split("\n")[0] or f"user filter {fn.__module__}.{fn.__qualname__}"
        register(name, desc)(lambda **params: make_user_filter(name, fn, params, desc))
        return fn

    return wrap


def register_callable_spec(spec: str) -> None:
    """Import ``module:function`` (the current folder is searched too) and register it under ``spec``."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise UserError(f"--filter {spec!r}: expected MODULE:FUNCTION, e.g. mypackage.filters:posterize")
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"--filter {spec!r}: cannot import module {module_name!r} ({exc})") from None
    except Exception as exc:  # the module's own code failed while importing (SyntaxError, RuntimeError, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise UserError(f"--filter {spec!r}: importing {module_name!r} failed ({type(exc).__name__}: {first})") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise UserError(f"--filter {spec!r}: module {module_name!r} has no callable {attr!r}")
    user_filter(spec, f"user filter {spec}")(fn)


set_spec_resolver(register_callable_spec)
