"""How many CPU threads this process should use: the cores it may actually run on.

``os.cpu_count()`` reports the machine; a container or ``taskset`` may allow fewer (the affinity mask)
and a cgroup quota may allow less CPU time than that. Oversubscribing is costly for OpenMP: on the
project's 2-core machine, torch at 2 threads ran ~7x fewer training steps than at 1 thread while
another process kept one core busy (see the knobs table, ``make knobs``).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import cv2

from src.errors import UserError


def cgroup_cpu_quota() -> float | None:
    """CPUs' worth of time the cgroup allows (``cpu.max`` v2 or ``cfs_quota_us`` v1); None if unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def available_cores() -> int:
    """Cores this process may use: its affinity mask, capped by a cgroup CPU quota (at least 1)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    if quota is not None:
        n = min(n, max(1, math.floor(quota)))
    return max(1, n)


def set_threads(n: int) -> int:
    """Pin torch's and OpenCV's thread pools to ``n`` threads; returns ``n``."""
    import torch  # start-up: torch only when called


    if n < 1:
        raise UserError(f"--threads must be at least 1, got {n}")
    torch.set_num_threads(n)
    cv2.setNumThreads(n)
    return n
