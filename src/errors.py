"""One exception type for problems a user can fix, and how any exception reads on one line.

The bottom of the import graph: imports nothing from ``src``.
"""
from __future__ import annotations


class UserError(ValueError):
    """Bad input, a missing file, an unknown name: reported as one line, never as a traceback."""


class TooManyPixels(UserError):
    """An image over the reader's megapixel limit (a guard against decompression bombs), refused before decoding."""


class NonFiniteOutput(UserError):
    """The network produced NaN or infinite values: no image, no score."""


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
