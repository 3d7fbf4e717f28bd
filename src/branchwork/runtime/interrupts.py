"""Ctrl-C while a run's loop is in this process: stop cleanly, or at once if asked twice.

The first interrupt stops the run gracefully: nothing new is launched and the steps that are
running finish and are recorded. A second one abandons them: step processes are killed,
their attempts and the run are recorded STOPPED, and the wait ends within a second (threads
cannot be killed; an abandoned inline step runs on in the background, its result ignored).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Protocol

SIGNAL_CHECK_SECONDS = 0.1  # the longest the main thread blocks without looking at signals


def in_slices(wait: Callable[[float], bool], timeout: float | None = None) -> bool:
    """`wait(seconds)`, a slice at a time, until it returns True (True) or `timeout` passed
    (False). A Ctrl-C that the kernel hands to another thread is seen by the main thread only
    when it runs Python code again: blocked in one long wait, a run's Ctrl-C waited for its
    steps to end."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = SIGNAL_CHECK_SECONDS if deadline is None else deadline - time.monotonic()
        if wait(max(0.0, min(SIGNAL_CHECK_SECONDS, left))):
            return True
        if deadline is not None and time.monotonic() >= deadline:
            return False


class Terminated(KeyboardInterrupt):
    """SIGTERM in an orchestration process: stop at once, abandoning running steps (a job
    being terminated will not get the time to let them finish)."""


def raise_terminated(signum: int, _frame: FrameType | None) -> None:
    """The SIGTERM handler of a process running a run's loop."""
    raise Terminated(f"stopped by {signal.Signals(signum).name}")


@contextmanager
def sigterm_stops_the_run() -> Iterator[None]:
    """SIGTERM to a process running a run's loop itself (the local orchestrator: a script,
    `branchwork run`; the Ray orchestrator's driver) stops the run at once, as in an
    orchestration process, and records it STOPPED: by default the process died on the spot
    and the run read `running` until it was found lost. Only in the main thread, and only
    where SIGTERM has its default action or Ray's (`ray.init` sets one that exits: the run
    waited for its steps, then read failed with "SystemExit: 15"); a handler of the program's
    own is left alone, and the one found is put back after the run."""
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or not (
        previous is signal.SIG_DFL or _rays(previous)
    ):
        yield
        return
    signal.signal(signal.SIGTERM, raise_terminated)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is raise_terminated:  # not one set meanwhile
            signal.signal(signal.SIGTERM, previous)


def _rays(handler: object) -> bool:
    """Whether `handler` is the SIGTERM handler `ray.init` sets (`sys.exit(signum)`)."""
    return getattr(handler, "__module__", None) == "ray._private.worker"


@contextmanager
def sigterm_handler_kept() -> Iterator[None]:
    """Put back a run's SIGTERM handler (`sigterm_stops_the_run`) that the block replaced:
    `ray.init` replaces whatever handler it finds with its own."""
    kept = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        if kept is raise_terminated and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, kept)


class Stoppable(Protocol):
    def request_stop(self, abandon: bool) -> None: ...

    def running_steps(self) -> int: ...

    def close(self, cancel: bool = False) -> None: ...


def stopping_message(running: int) -> str:
    if not running:
        return "stopping: no step is running"
    steps = "1 step" if running == 1 else f"{running} steps"
    return f"stopping: {steps} still running — Ctrl-C again to abandon them"


def abandoning_message(running: int) -> str:
    steps = "1 running step" if running == 1 else f"{running} running steps"
    return f"abandoning {steps}: the run is recorded stopped"


def announce(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def stop_on_interrupt(loop: Stoppable, interrupt: KeyboardInterrupt) -> None:
    """Carry out the first Ctrl-C (graceful), and a second one while waiting (abandon)."""
    if not isinstance(interrupt, Terminated):
        loop.request_stop(abandon=False)
        announce(stopping_message(loop.running_steps()))
        try:
            with _next_interrupt_abandons(loop) as abandoned:
                loop.close()
            if not abandoned:
                return
        except KeyboardInterrupt:  # SIGTERM (Terminated) meanwhile: abandon them
            _abandon(loop)
    else:
        _abandon(loop)
    while True:
        try:
            loop.close()  # recording the abandoned attempts takes a moment: let it finish
            return
        except KeyboardInterrupt:
            continue


def _abandon(loop: Stoppable) -> None:
    announce(abandoning_message(loop.running_steps()))
    loop.request_stop(abandon=True)


@contextmanager
def _next_interrupt_abandons(loop: Stoppable) -> Iterator[list[bool]]:
    """While the running steps finish, the next Ctrl-C abandons them, from a handler of its
    own: raised as a KeyboardInterrupt, it was lost when it landed in a finalizer (a
    weakref callback: Python prints it as ignored) and the run waited for its steps. Yields
    a list that holds True once they were abandoned."""
    abandoned: list[bool] = []

    def abandon(_signum: int, _frame: FrameType | None) -> None:
        if not abandoned:  # a third Ctrl-C: already being abandoned
            abandoned.append(True)
            _abandon(loop)

    if threading.current_thread() is not threading.main_thread():
        yield abandoned  # signals reach the main thread only
        return
    previous = signal.signal(signal.SIGINT, abandon)
    try:
        yield abandoned
    finally:
        if previous is not None:  # None: a handler not set from Python, which stays ours
            signal.signal(signal.SIGINT, previous)


_DEFERRED = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C (and SIGTERM) until the block ends, so that what it does — record a run
    and the state that lets a later Ctrl-C finish it — happens whole or not at all. Python
    runs signal handlers in the main thread only, so elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    held = {
        signum: signal.signal(signum, lambda s, _f: received.append(s))
        for signum in _DEFERRED
        if callable(signal.getsignal(signum))  # a Python handler would raise here: hold it
    }
    try:
        yield
    finally:
        for held_signal, handler in held.items():
            signal.signal(held_signal, handler)
        for arrived in dict.fromkeys(received):
            signal.raise_signal(arrived)  # now, to the handler it was meant for
