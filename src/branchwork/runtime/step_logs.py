"""Capturing each step's stdout, stderr and `logging` records, also when steps run side by
side in threads.

`sys.stdout` / `sys.stderr` are wrapped by streams that copy every write into the
buffer of the step running in the writing thread's context (a ContextVar) and still pass it
on, so the console shows what it always did. A logging handler does the same for records;
what a logging handler writes to a stream is not copied twice.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TextIO

_buffer: ContextVar[list[str] | None] = ContextVar("branchwork_step_log", default=None)
_handler: logging.Handler | None = None
_install_lock = threading.Lock()


class _TeeStream:
    """Writes go to the original stream and, inside a step, to that step's buffer."""

    def __init__(self, original: TextIO) -> None:
        self._original = original

    def write(self, text: str) -> int:
        buffer = _buffer.get()
        if buffer is not None and sys._getframe(1).f_globals.get("__name__") != "logging":
            buffer.append(text)
        return self._original.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


class _StepLogHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        buffer = _buffer.get()
        if buffer is not None:
            buffer.append(self.format(record) + "\n")


def _install() -> None:
    """Put the tee streams in place — again if someone (a test runner, a notebook) swapped
    `sys.stdout` / `sys.stderr` since — and the logging handler once."""
    global _handler
    with _install_lock:
        if not isinstance(sys.stdout, _TeeStream):
            sys.stdout = _TeeStream(sys.stdout)
        if not isinstance(sys.stderr, _TeeStream):
            sys.stderr = _TeeStream(sys.stderr)
        if _handler is None:
            _handler = _StepLogHandler()
            logging.getLogger().addHandler(_handler)


@contextmanager
def capture_step_logs() -> Iterator[list[str]]:
    """Collect what the current context prints and logs, until the block ends."""
    _install()
    lines: list[str] = []
    token = _buffer.set(lines)
    try:
        yield lines
    finally:
        _buffer.reset(token)
