"""Which run a call started: `Pipeline.last_run` for the calling thread, and a callback for
whoever follows the runs a block starts (`branchwork run` follows its own run this way)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_last_runs = threading.local()
_run_started: ContextVar[Callable[[str], None] | None] = ContextVar(
    "branchwork_run_started", default=None
)


@contextmanager
def watching_runs(on_started: Callable[[str], None]) -> Iterator[None]:
    """Call `on_started(run_id)` for every run that calls in this block start (or resume),
    as soon as the run exists: how `branchwork run` follows its own run."""
    token = _run_started.set(on_started)
    try:
        yield
    finally:
        _run_started.reset(token)


def remember_last_run(pipeline_name: str, run_id: str) -> None:
    """Record the run a call started, for `Pipeline.last_run` in this thread and for the
    `watching_runs` callback of this context."""
    if not hasattr(_last_runs, "by_pipeline"):
        _last_runs.by_pipeline = {}
    _last_runs.by_pipeline[pipeline_name] = run_id
    on_started = _run_started.get()
    if on_started is not None:
        on_started(run_id)


def last_run_id(pipeline_name: str) -> str | None:
    """The run this thread's last call of the pipeline started or resumed, if any."""
    by_pipeline: dict[str, str] = getattr(_last_runs, "by_pipeline", {})
    return by_pipeline.get(pipeline_name)
