"""The logging levels and warnings filters a step's process takes from the loop's process.

A step that runs in a process of its own (an isolated step's, forked from a zygote that never
ran the user's script; a Ray worker) did not run what set them up: `logging.basicConfig(
level=logging.INFO)`, `logging.getLogger("myapp").setLevel(logging.DEBUG)`,
`warnings.filterwarnings("ignore", ...)` at the top of the script. Its INFO and DEBUG records
were dropped (so missing from its log) and warnings the script silenced were logged. The
request carries the levels set on loggers and the warnings filters (as they were when the
run started), and the step's process applies them while the step runs. Handlers and formats
stay the process's own (its console lines are not formatted as the script's are); the step's
log holds the records either way.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
import warnings
from collections.abc import Iterator
from typing import Any

from branchwork.user_code import code_generation


def current_setup() -> dict[str, Any]:
    """The levels set on this process's loggers ("" for the root) and its warnings filters,
    as JSON; read once per run (`code_generation`), not once per step sent."""
    return _setup_of(code_generation())


@functools.lru_cache(maxsize=1)
def _setup_of(generation: tuple[int, int]) -> dict[str, Any]:
    loggers = list(logging.root.manager.loggerDict.items())  # (one C call: no lock needed)
    levels = {
        name: logger.level
        for name, logger in loggers
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET
    }
    filters = []
    for action, message, category, module, lineno in warnings.filters:
        kind: Any = category
        filters.append(
            [
                action,
                _pattern(message),
                f"{kind.__module__}:{kind.__qualname__}",
                _pattern(module),
                lineno,
            ]
        )
    return {"levels": {"": logging.root.level, **levels}, "warnings": filters}


def _pattern(text: Any) -> str:
    """A filter's message or module: a compiled pattern, a plain str (Python's own
    `__main__` filter), or None for any."""
    return str(getattr(text, "pattern", text) or "")


@contextlib.contextmanager
def applied(setup: dict[str, Any]) -> Iterator[None]:
    """`current_setup()` of the loop's process while a step runs, the levels and filters of
    this process put back after it (a Ray worker runs other tasks, and Ray's own code)."""
    loggers = {name: logging.getLogger(name or None) for name in setup["levels"]}
    before = {name: logger.level for name, logger in loggers.items()}
    filters = []
    for action, message, category, module, lineno in setup["warnings"]:
        kind = _warning_class(category)
        if kind is not None:
            filters.append((action, message, kind, module, lineno))
    with warnings.catch_warnings():
        warnings.resetwarnings()
        for action, message, kind, module, lineno in filters:
            warnings.filterwarnings(action, message, kind, module, lineno, append=True)
        for name, level in setup["levels"].items():
            loggers[name].setLevel(level)
        try:
            yield
        finally:
            for name, level in before.items():
                loggers[name].setLevel(level)


def _warning_class(name: str) -> type[Warning] | None:
    """The class of a filter's category if its module is loaded here (a library's filter
    imports nothing: a step's process would import pandas to silence one of its warnings)."""
    module_name, _, qualname = name.partition(":")
    found: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found if isinstance(found, type) and issubclass(found, Warning) else None
