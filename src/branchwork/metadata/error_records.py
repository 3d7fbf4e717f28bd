"""An exception that crosses processes through the metadata store.

A run whose loop ran in another process (local_process, a job, a Ray task) hands its caller
only what the store holds. So the loop records, beside the error's type name and message,
its class path and arguments (`encode`), and the caller rebuilds the original exception
from them (`rebuild`) — `except ValueError:` keeps working on every orchestrator. No pickle:
rebuilding imports the class and calls it with JSON arguments, nothing else. When that is
not possible, `RemoteStepError` carries the type name, message and remote traceback and
says why.
"""

from __future__ import annotations

import json
from typing import Any

from branchwork.exceptions import BranchworkError
from branchwork.user_code import (
    ImportStopped,
    find_recorded,
    importing_user_code,
    recorded_module,
)


class RemoteTraceback(Exception):
    """The traceback of an exception raised in another process, as text."""

    def __str__(self) -> str:
        return "\n" + str(self.args[0]).rstrip()


class RemoteStepError(BranchworkError):
    """An exception from another process that could not be rebuilt here. It is recorded as
    the original (`type_name_of`, `message_of`, and `encoded`, the original's `encode`d
    form when known), so that a process that can rebuild it does."""

    def __init__(
        self,
        type_name: str,
        message: str,
        traceback: str | None,
        why: str,
        encoded: str | None = None,
    ) -> None:
        super().__init__(
            f"{type_name}: {message} (raised in another process; not rebuilt here: {why})"
        )
        self.type_name = type_name
        self.remote_message = message
        self.remote_traceback = traceback
        self.encoded = encoded


def type_name_of(error: BaseException) -> str:
    """The name an error is recorded under: a RemoteStepError's is the original's."""
    return error.type_name if isinstance(error, RemoteStepError) else type(error).__name__


def message_of(error: BaseException) -> str:
    """The message an error is recorded with: a RemoteStepError's is the original's."""
    if isinstance(error, RemoteStepError):
        return storable(error.remote_message)
    return text_of(error)


def text_of(error: object) -> str:
    """`str(error)` as a store holds it (`storable`), or a text saying that it raised: a
    user's exception whose `__str__` reads an attribute its `__init__` never set crashed the
    loop where its message was written, and left finished steps recorded running."""
    try:
        return storable(str(error))
    except Exception as failure:  # noqa: BLE001 - whatever a user's __str__ raises
        return f"<str() of this {type(error).__name__} raised {type(failure).__name__}>"


def traceback_of(error: BaseException) -> str:
    """The traceback recorded for `error`, as a store holds it."""
    import traceback

    return storable("".join(traceback.format_exception(error)))


def storable(text: str) -> str:
    """`text` with each lone surrogate written as its escape (`\\udce9`): UTF-8 cannot
    encode one, so a message, traceback or log holding one (a file name `os.fsdecode` could
    not decode, a subprocess's output read with "surrogateescape") failed the whole batch of
    records it was in, and the run lost every step it had finished."""
    if text.isascii():
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
    return text


def columns(error: BaseException) -> dict[str, str]:
    """How a run records the error that failed it: type, message, `encode`d, traceback."""
    return {
        "exception_type": type_name_of(error),
        "exception_message": message_of(error),
        "exception_data": encode(error),
        "traceback": traceback_of(error),
    }


def encode(error: BaseException) -> str:
    """What it takes to rebuild `error` elsewhere, as JSON (a RemoteStepError: the
    original, where known)."""
    if isinstance(error, RemoteStepError) and error.encoded is not None:
        return error.encoded
    cls = type(error)
    module = recorded_module(cls.__module__)
    try:
        args: list[Any] | None = json.loads(json.dumps(list(error.args)))
    except (TypeError, ValueError):
        args = None
    return json.dumps({"class": f"{module}:{cls.__qualname__}", "args": args})


def rebuild(data: str | None, type_name: str, message: str, traceback: str | None) -> BaseException:
    """The exception `encode` described, its remote traceback as `__cause__`; or a
    RemoteStepError saying why it could not be rebuilt."""
    try:
        with importing_user_code():
            rebuilt = _rebuilt(json.loads(data) if data else None, message)
    except (Exception, ImportStopped) as why:
        error: BaseException = RemoteStepError(type_name, message, traceback, str(why))
    else:
        error = rebuilt
    if traceback:
        error.__cause__ = RemoteTraceback(traceback)
    return error


def _rebuilt(data: dict[str, Any] | None, message: str) -> BaseException:
    if data is None:
        raise ValueError("its class was not recorded")
    module_name, _, qualname = data["class"].partition(":")
    if "<locals>" in qualname:
        raise ValueError(f"{data['class']} is defined inside a function")
    if data["args"] is None:
        raise ValueError("its arguments are not JSON-serializable")
    cls = find_recorded(module_name, qualname)
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        raise ValueError(f"{data['class']} is not an exception class")
    error = cls(*data["args"])
    if str(error) != message:
        raise ValueError(f"{data['class']}{tuple(data['args'])!r} reads differently here")
    return error
