"""One exception type for problems a user can fix, and a CLI wrapper that prints them on one line."""
from __future__ import annotations

import sys
from typing import Callable, Sequence


class UserError(ValueError):
    """Bad input, a missing file, an unknown name: reported as one line, never as a traceback."""


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> None:
    """Run a command-line ``main``; print user-facing errors as ``error: ...`` and exit 2."""
    try:
        code = main(argv)
    except (UserError, FileNotFoundError, ValueError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
