"""Capturing each step's stdout, stderr and `logging` records, also when steps run side by
side in threads.

`sys.stdout` / `sys.stderr` are wrapped by streams that copy every write into the
buffer of the step running in the writing thread's context (a ContextVar) and still pass it
on, so the console shows what it always did. A thread a step starts writes into that step's
buffer too: `Thread.start` is wrapped to hand the new thread the buffer, which a new thread's
empty context left out. Work handed to a thread pool (`ThreadPoolExecutor.submit`, which
`run_in_executor` uses) writes into the buffer of whoever submitted it, whichever step
started the pool's threads (a pool shared by steps mixed their logs). Once a step ends its
buffer is closed, so a thread that outlives it adds nothing to a finished step's log.

Logging records are caught where a logger hands them to the handlers (`Logger.callHandlers`,
wrapped), after its level and its filters, and after the handlers: a step's log holds what
the step's loggers let through, as the user's filters left it (a filter on a logger or a
handler that redacts a secret in place, or a logger's filter that drops a record, had no say
when records were caught as they were made, and secrets reached the store). Not by a
handler: a handler on the root logger would change what the whole process logs (Python's
last-resort handler and `logging.basicConfig()` only act while the root has no handler), so
warnings logged outside any step would vanish. What a logging handler then writes to a
stream is not copied a second time.
"""

from __future__ import annotations

import copy
import functools
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TextIO


class _StepLog(list[str]):
    """A step's lines, `open` while the step runs, each also handed to `_mirror` if set."""

    open = True

    def append(self, text: str) -> None:
        super().append(text)
        if _mirror is not None:
            _mirror(text)


# Where a step's process sends its lines as they come (`mirror_step_logs`); None: nowhere.
_mirror: Callable[[str], None] | None = None


def mirror_step_logs(send: Callable[[str], None]) -> None:
    """Hand every line a step of this process captures to `send` as well, at once: the
    process of an isolated step sends them to the loop, which keeps them if the process dies
    before its result (killed, `os._exit`, a crash in C), with the last lines before it."""
    global _mirror
    _mirror = send


_buffer: ContextVar[_StepLog | None] = ContextVar("branchwork_step_log", default=None)
_step_log_format = logging.Formatter("%(levelname)s %(name)s: %(message)s")
_wrapped = False
_install_lock = threading.Lock()


class _TeeStream:
    """Writes go to the original stream and, inside a step, to that step's buffer."""

    def __init__(self, original: TextIO) -> None:
        self._original = original

    def write(self, text: str) -> int:
        buffer = _buffer.get()
        if buffer is not None and buffer.open and not _from_logging(sys._getframe(1)):
            buffer.append(text)
        return self._original.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


def _from_logging(frame: Any) -> bool:
    """A logging handler's write: its record was caught already."""
    return bool(frame.f_globals.get("__name__") == "logging")


def _step_log_line(record: logging.LogRecord) -> str:
    """The record as the step's log shows it; formatting a copy leaves the record as the
    handlers expect it, and a message that cannot be formatted must not fail the call."""
    try:
        return _step_log_format.format(copy.copy(record)) + "\n"
    except Exception as error:
        message = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        return f"{record.levelname} {record.name}: {message} (could not format it: {error})\n"


def _capturing(
    call_handlers: Callable[[logging.Logger, logging.LogRecord], None],
) -> Callable[[logging.Logger, logging.LogRecord], None]:
    def capture_and_call_handlers(logger: logging.Logger, record: logging.LogRecord) -> None:
        call_handlers(logger, record)  # first: a handler's filter may redact it in place
        buffer = _buffer.get()
        if buffer is not None and buffer.open:
            buffer.append(_step_log_line(record))

    return capture_and_call_handlers


def _in_the_steps_log(
    start: Callable[[threading.Thread], None],
) -> Callable[[threading.Thread], None]:
    def start_in_the_steps_log(thread: threading.Thread) -> None:
        buffer = _buffer.get()
        if buffer is not None and buffer.open:
            run = thread.run

            def run_in_the_steps_log() -> None:
                _buffer.set(buffer)  # in the new thread's own context
                run()

            thread.run = run_in_the_steps_log  # type: ignore[method-assign]
        start(thread)

    return start_in_the_steps_log


def _with_the_submitters_log(submit: Callable[..., Any]) -> Callable[..., Any]:
    def submit_with_the_submitters_log(
        executor: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> Any:
        return submit(executor, functools.partial(_in_log, _buffer.get(), fn), *args, **kwargs)

    return submit_with_the_submitters_log


def _in_log(buffer: _StepLog | None, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    token = _buffer.set(buffer)
    try:
        return fn(*args, **kwargs)
    finally:
        _buffer.reset(token)


def _install() -> None:
    """Put the tee streams in place — again if someone (a test runner, a notebook) swapped
    `sys.stdout` / `sys.stderr` since — and wrap `Logger.callHandlers`, `Thread.start` and
    `ThreadPoolExecutor.submit` once."""
    global _wrapped
    with _install_lock:
        if not isinstance(sys.stdout, _TeeStream):
            sys.stdout = _TeeStream(sys.stdout)
        if not isinstance(sys.stderr, _TeeStream):
            sys.stderr = _TeeStream(sys.stderr)
        if not _wrapped:
            wrapped = _capturing(logging.Logger.callHandlers)
            logging.Logger.callHandlers = wrapped  # type: ignore[method-assign,assignment]
            threading.Thread.start = _in_the_steps_log(threading.Thread.start)  # type: ignore[method-assign,assignment]
            ThreadPoolExecutor.submit = _with_the_submitters_log(ThreadPoolExecutor.submit)  # type: ignore[method-assign]
            _wrapped = True


@contextmanager
def capture_step_logs() -> Iterator[list[str]]:
    """Collect what the current context prints and logs, until the block ends."""
    _install()
    lines = _StepLog()
    token = _buffer.set(lines)
    try:
        yield lines
    finally:
        lines.open = False
        _buffer.reset(token)
