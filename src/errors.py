"""One exception type for problems a user can fix, and a CLI wrapper that prints them on one line."""
from __future__ import annotations

import json
import math
import sys
from typing import Any, Callable, Sequence


class UserError(ValueError):
    """Bad input, a missing file, an unknown name: reported as one line, never as a traceback."""


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message, with the path and the reason for OS and import errors.

    >>> one_line(PermissionError(13, "Permission denied", "/out/x.png"))
    '/out/x.png: Permission denied'
    """
    if isinstance(exc, OSError) and exc.strerror:
        where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
        return f"{where}: {exc.strerror}" if where else exc.strerror
    if isinstance(exc, ImportError):
        name = exc.name or "a module"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"cannot import {name} ({first})"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
