"""Fewer garbage collections while runs are orchestrated in this process.

A run allocates a few dozen objects per step (its call, outcome, rows, records), nearly all
freed by reference counting, yet each 700 allocations set off a young-generation collection
and, as the run's objects pile up, full ones that scan all of them: 8 % of the CPU of a
100 000-step fan-out (`benchmarks/README.md`). While at least one run's loop runs here, the
first generation's threshold is raised to `YOUNG_THRESHOLD` (0.9 % then); the process's
own setting comes back when the last one ends, unless something else changed it meanwhile.
Cyclic garbage is still collected, in larger and rarer batches.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

YOUNG_THRESHOLD = 50_000

_lock = threading.Lock()
_runs = 0
_before: tuple[int, int, int] | None = None  # the thresholds to restore


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """While a run's loop runs: see the module docstring."""
    global _runs, _before
    with _lock:
        if _runs == 0:
            before = gc.get_threshold()
            if before[0] < YOUNG_THRESHOLD:
                _before = before
                gc.set_threshold(YOUNG_THRESHOLD, *before[1:])
        _runs += 1
    try:
        yield
    finally:
        with _lock:
            _runs -= 1
            if _runs == 0 and _before is not None:
                if gc.get_threshold()[0] == YOUNG_THRESHOLD:  # nobody else set it since
                    gc.set_threshold(*_before)
                _before = None
