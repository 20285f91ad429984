"""Pausing Python's cyclic garbage collector while a bulk reader builds its snapshot.

A scan of the whole ledger keeps hundreds of thousands of small objects alive (one
summary per chain, then one decision per learner). Each allocation-triggered full
collection walks all of them, and there are more such collections the bigger the
snapshot grows, so the cost grows faster than the ledger: measured on the 10,000-
learner benchmark world, the monthly report took 0.90-1.12 s with the collector on
and 0.73-0.79 s with it paused (`bench/eligibility_bench.py`, BENCHMARKS.md).

What these readers build holds no reference cycles, so reference counting frees it
as before; only cyclic garbage made elsewhere in the process while a pause lasts
waits for the next collection. The collector is process-wide, so pauses are counted:
it is enabled again when the last overlapping pause ends, and only if it was enabled
when the first began.
"""

from __future__ import annotations

import functools
import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

# The collector is one per process, so its pause count is too: module state, not a
# service object (nothing here is configured or holds a resource).
_lock = threading.Lock()
_depth = 0
_resume = False


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    global _depth, _resume
    with _lock:
        if _depth == 0:
            _resume = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _resume:
                gc.enable()


def gc_paused(fn: Callable[P, R]) -> Callable[P, R]:
    """`fn` run under `cyclic_gc_paused`."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with cyclic_gc_paused():
            return fn(*args, **kwargs)

    return wrapper
