"""Files: the project's one atomic writer (temp file beside the target, then rename) and the output check.

May import: :mod:`src.errors` only.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import re
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Iterator

from src.errors import UserError

_UMASK = os.umask(0o022)  # read once at import (os.umask can only be read by setting it)
os.umask(_UMASK)


def check_writable(folder: str | os.PathLike, files: tuple[str, ...] = (), what: str = "--output") -> Path:
    """Make sure ``folder`` is (or can become) a writable folder and none of ``files`` in it is a folder.

    Called before any work starts, so a bad output path fails in one line instead of after the run.
    Creates the folder; a probe file proves it writable.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{what} {folder}: is a file, expected a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", suffix=TEMP_SUFFIX, dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"{what} {folder}: cannot write there ({exc.strerror or exc})") from None
    for name in files:
        if (folder / name).is_dir():
            raise UserError(f"{what} {folder / name}: is a folder, expected a file to write")
    return folder


# Temporary files sit beside their target as ".NAME.PID.RANDOM.part": a file left by a killed process is
# removed the next time that folder is written to (its PID is gone); this process's own on exit.
TEMP_SUFFIX = ".part"
_live_temps: set[str] = set()
_swept: set[Path] = set()


def _sweep_stale_temps(folder: Path) -> None:
    if folder in _swept:
        return
    _swept.add(folder)
    for p in folder.glob(f".*{TEMP_SUFFIX}"):
        parts = p.name.split(".")
        pid = int(parts[-3]) if len(parts) >= 5 and parts[-3].isdigit() else None
        if pid is None:  # the earlier ".NAME.RANDOM.part" form, without a PID: stale once old
            if len(parts) >= 4 and _OLD_TEMP.fullmatch(parts[-2]) and _age_s(p) > OLD_TEMP_AGE_S:
                p.unlink(missing_ok=True)
            continue
        if pid != os.getpid() and not _alive(pid):
            p.unlink(missing_ok=True)


_OLD_TEMP = re.compile(r"[a-z0-9_]{8}")  # tempfile's random part
OLD_TEMP_AGE_S = 3600


def _age_s(p: Path) -> float:
    try:
        return time.time() - p.stat().st_mtime
    except OSError:
        return 0.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@atexit.register
def _remove_own_temps() -> None:
    for tmp in list(_live_temps):
        Path(tmp).unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file that appears under ``path`` only when the ``with`` block ends without an error.

    The one writer of the project's outputs: it writes a temporary file beside ``path`` and renames it
    into place, so a reader never sees a half-written file; an error (or a kill) inside the block leaves
    nothing under ``path``, and a temporary file left by a killed run is cleaned up by the next write
    into that folder. Streams (a huge image's PNG written band by band) write through it as they go.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_stale_temps(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=TEMP_SUFFIX, dir=path.parent)
    _live_temps.add(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        _live_temps.discard(tmp)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`atomic_open`)."""
    with atomic_open(path) as f:
        f.write(data)
