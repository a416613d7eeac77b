"""Memory of a process tree (Linux /proc): resident set size now, its peak sampled in a thread, and a command
run with its time and peaks.

May import: :mod:`src.errors`.
"""
from __future__ import annotations

import os
import subprocess
import threading
import time

from src.errors import UserError


def rss_bytes(pid: int, pss: bool = False) -> int:
    """Resident memory of ``pid`` and its descendants (Linux /proc). ``pss``: proportional set size, each shared
    page split among the processes that map it (forked loader workers share their parent's pages)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup" if pss else f"/proc/{p}/status") as f:
                key = "Pss:" if pss else "VmRSS:"
                total += next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except (OSError, StopIteration):
            continue
    return total


class PeakRSS:
    """Samples ``rss_bytes(pid)`` in a thread while active; ``.peak`` is the largest value seen (``.peak_pss``
    the largest proportional set size, when ``pss``)."""

    def __init__(self, pid: int, every_s: float = 0.05, pss: bool = False):
        self.pid, self.every_s, self.peak, self._stop = pid, every_s, 0, threading.Event()
        self.pss, self.peak_pss = pss, 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes(self.pid))
            if self.pss:
                self.peak_pss = max(self.peak_pss, rss_bytes(self.pid, pss=True))
            time.sleep(self.every_s)

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def measured(cmd: list[str], cwd: str | os.PathLike | None = None, timeout: float = 1200) -> dict:
    """Run ``cmd``: its wall time, exit code, output, the peak RSS and PSS of its process tree (sampled every
    0.2 s) and the exact peak RSS of its own process (the kernel's count, read when it exits)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    chunks: list[bytes] = []

    def read() -> None:  # drained as it comes, so a chatty child never blocks on a full pipe
        while chunk := proc.stdout.read1(65536):
            chunks.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    with PeakRSS(proc.pid, every_s=0.2, pss=True) as mem:
        reader.start()
        while not (waited := os.wait4(proc.pid, os.WNOHANG))[0]:  # wait4: the exited child's own peak
            if time.perf_counter() - t0 > timeout:
                proc.kill()
                proc.wait()
                raise UserError(f"timed out after {timeout:.0f} s: {' '.join(cmd)}")
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(waited[1])
        reader.join()
    out = b"".join(chunks).decode(errors="replace")
    return {"rc": proc.returncode, "wall_s": time.perf_counter() - t0, "output": out,
            "peak_rss_mb": mem.peak / 2**20, "peak_pss_mb": mem.peak_pss / 2**20,
            "max_rss_mb": waited[2].ru_maxrss / 2**10}  # KiB on Linux
