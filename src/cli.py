"""Command-line plumbing shared by every ``python -m src....`` command: the one-line error wrapper,
KEY=VALUE option parsing and JSON output that any parser accepts.

May import: :mod:`src.errors` only.
"""
from __future__ import annotations

import ast
import json
import math
import sys
from typing import Any, Callable, Sequence

from src.errors import UserError, one_line


def parse_params(items: Sequence[str] | None, what: str) -> dict[str, Any]:
    """``["ksize=5", "blur=False"]`` -> ``{"ksize": 5, "blur": False}`` (values as Python literals)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise UserError(f"{what} {item!r}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key.strip()] = value
    return out


def shard(text: str) -> slice:
    """``--shard I/N`` -> the slice that takes every N-th run from the I-th (``runs[shard("1/2")]``).

    >>> list(range(5))[shard("1/2")]
    [1, 3]
    """
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit() and 0 <= int(index) < int(count)):
        raise UserError(f"--shard must be I/N with 0 <= I < N, got {text!r}")
    return slice(int(index), None, int(count))


def strict_json(obj: Any, **kwargs: Any) -> str:
    """JSON text that any parser accepts: NaN and infinities become ``null`` (``allow_nan=False``).

    >>> strict_json({"psnr": float("nan"), "ssim": 0.5})
    '{"psnr": null, "ssim": 0.5}'
    """
    return json.dumps(_finite_or_none(obj), allow_nan=False, **kwargs)


def _finite_or_none(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    return obj


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> None:
    """Run a command-line ``main``; print user-facing, OS and import errors as ``error: ...`` and exit 2."""
    try:
        code = main(argv)
    except (UserError, ValueError, OSError, ImportError) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
