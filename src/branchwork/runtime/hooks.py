"""Running user hooks (`on_success` / `on_failure` of steps and pipelines).

A hook that takes a parameter receives the exception (`on_failure`); one that takes none is
called bare. A hook's own error is logged, never allowed to change the outcome it reports on.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("branchwork")


def call_hook(hook: Callable[..., Any] | None, error: BaseException | None, where: str) -> None:
    if hook is None:
        return
    try:
        takes_argument = bool(inspect.signature(hook).parameters)
    except (TypeError, ValueError):
        takes_argument = error is not None
    try:
        if takes_argument:
            hook(error)
        else:
            hook()
    except Exception:
        logger.exception("The %s hook %r raised; ignored", where, hook)
