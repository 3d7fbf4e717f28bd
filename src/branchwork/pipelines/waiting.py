"""Waiting for a run whose loop runs elsewhere (another process, a job, a Ray task), and
Ctrl-C while doing so.

The orchestrator's `wait_for_completion()` runs in a daemon thread, so the caller's main
thread stays interruptible whatever that call does. The first Ctrl-C asks the loop, through
the store (the one channel every orchestrator shares), to stop gracefully and keeps waiting;
a second one asks it to abandon its running steps and gives it a second: if the run is not
finished by then, the caller records it STOPPED itself and ends the job if the orchestrator
said how (`SubmissionResult.stop`). Either way the caller then gets KeyboardInterrupt, and
the run is never left `running`. SIGTERM to the caller abandons at once, as a second Ctrl-C
does, and the caller gets `Terminated` (a KeyboardInterrupt).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from branchwork.metadata.queries import step_run_count
from branchwork.metadata.runs import mark_run_stopped, request_stop
from branchwork.runtime.interrupts import (
    Terminated,
    abandoning_message,
    announce,
    in_slices,
    interrupts_deferred,
    sigterm_stops_the_run,
    stopping_message,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from branchwork.orchestrators.base import SubmissionResult

ABANDON_GRACE_SECONDS = 0.8  # a loop asked to abandon has this long before the caller steps in


class _Waiter:
    """`wait_for_completion()` in a daemon thread; its outcome once it returns."""

    def __init__(self, wait_for_completion: Any) -> None:
        self._done = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None
        thread = threading.Thread(
            target=self._run, args=(wait_for_completion,), name="branchwork-wait", daemon=True
        )
        thread.start()

    def _run(self, wait_for_completion: Any) -> None:
        try:
            self._value = wait_for_completion()
        except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
            self._error = error
        finally:
            self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        return in_slices(self._done.wait, timeout)

    def outcome(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value


def wait_for_run(result: SubmissionResult, engine: Engine, run_id: str) -> Any:
    """What `result.wait_for_completion()` returns; KeyboardInterrupt once the run has
    stopped after Ctrl-C, `Terminated` after SIGTERM (see the module docstring)."""
    waiter = _Waiter(result.wait_for_completion)
    with sigterm_stops_the_run():
        try:
            waiter.wait()
            return waiter.outcome()
        except Terminated:
            _abandon(result, waiter, engine, run_id, "SIGTERM")
            raise
        except KeyboardInterrupt:
            pass
        request_stop(engine, run_id, "graceful")
        announce(stopping_message(step_run_count(engine, run_id, "running")))
        try:
            waiter.wait()
        except KeyboardInterrupt as interrupt:
            _abandon(result, waiter, engine, run_id, "a second Ctrl-C")
            if isinstance(interrupt, Terminated):
                raise
        raise KeyboardInterrupt


def _abandon(
    result: SubmissionResult, waiter: _Waiter, engine: Engine, run_id: str, by: str
) -> None:
    """SIGTERM (`timeout`, a CI cancel, `docker stop`), or a second Ctrl-C: the loop is asked
    to abandon its running steps; the caller records the run STOPPED and ends its process
    if it did not stop within a second. SIGTERM used to kill the caller alone, and a
    local_process run went on in the background. One more signal meanwhile is held until
    the run is recorded."""
    with interrupts_deferred():
        announce(abandoning_message(step_run_count(engine, run_id, "running")))
        request_stop(engine, run_id, "abandon")
        if waiter.wait(ABANDON_GRACE_SECONDS):
            return
        mark_run_stopped(
            engine, run_id, f"Abandoned by {by}: its orchestration did not stop within a second."
        )
        if result.stop is not None:
            result.stop()
