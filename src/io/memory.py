"""Memory of a process tree (Linux /proc): resident set size now, and its peak sampled in a thread.

May import: nothing from ``src``.
"""
from __future__ import annotations

import os
import threading
import time


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
