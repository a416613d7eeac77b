"""Timing: median seconds of repeated calls, interleaved so that load changes weigh on every candidate alike.

May import: nothing from ``src``. Pass ``sync=torch.cuda.synchronize`` to time GPU work (kernels are
asynchronous: without it a call's time is only its launch).
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Sequence


def median_seconds(fn: Callable[[], object], repeats: int, sync: Callable[[], object] | None = None) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after one warm-up call."""
    return interleaved_medians([fn], repeats, sync)[0]


def interleaved_medians(fns: Sequence[Callable[[], object]], repeats: int,
                        sync: Callable[[], object] | None = None) -> list[float]:
    """Median seconds of each call over ``repeats`` rounds, after one warm-up call each; every round calls
    each function once, so a change of load on a shared machine weighs on all of them alike, and each
    round starts one further along the list, so no function always runs right after the same one (a
    call that frees large arrays leaves the next one to page-fault its fresh allocations)."""
    sync = sync or (lambda: None)
    for fn in fns:
        fn()
    sync()
    times: list[list[float]] = [[] for _ in fns]
    n = len(fns)
    for r in range(repeats):
        for i in range(r, r + n):
            t0 = time.perf_counter()
            fns[i % n]()
            sync()
            times[i % n].append(time.perf_counter() - t0)
    return [statistics.median(ts) for ts in times]
