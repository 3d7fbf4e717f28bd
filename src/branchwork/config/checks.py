"""Checks of the options `@step`, `@pipeline` and their `.with_options` take.

Each refuses a bad value where it is set, with a ConfigurationError naming the step or
pipeline and the option (`where`), rather than letting it through to fail — or, worse, be
read as something else — in the middle of a run.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from branchwork.exceptions import ConfigurationError


def check_flag(value: Any, where: str) -> bool | None:
    """True, False, or None (inherit). Anything else is refused, not read as true or false:
    the engine turns caching off only for False, so `enable_cache=0` would leave it on."""
    if value is not None and not isinstance(value, bool):
        raise ConfigurationError(f"{where} must be True or False, got {value!r}")
    return value


def check_hook(value: object, where: str) -> Callable[..., Any] | None:
    """A hook is called when the run gets there: one that cannot be is refused now."""
    if value is None:
        return None
    if not callable(value):
        raise ConfigurationError(f"{where} must be a function, got {value!r}")
    if inspect.iscoroutinefunction(value) or inspect.iscoroutinefunction(
        getattr(value, "__call__", None)  # noqa: B004 - an object with an `async def __call__`
    ):
        raise ConfigurationError(
            f"{where} must be a plain function, got the async function {value!r}: hooks are "
            "called, not awaited, so its body would never run. Make it a def (it may call "
            "asyncio.run(...))."
        )
    return value


def check_name(name: Any, func: Callable[..., Any], decorator: str) -> str:
    """A step's or pipeline's name, `func`'s own when not given: a non-empty string without
    '/', which would make the CLI's RUN/INVOCATION/OUTPUT addresses of its runs and outputs
    ambiguous, and of up to 100 characters, so the names made from it (a run's, an
    invocation's, an output's artifact `{pipeline}::{step}::{output}`) fit the store's
    255-character columns, which PostgreSQL enforces."""
    if name is None:
        return str(func.__name__)
    where = f"{decorator} of {getattr(func, '__qualname__', name)!r}"
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError(f"{where}: name= must be a non-empty string, got {name!r}")
    if "/" in name:
        raise ConfigurationError(
            f"{where}: name={name!r} cannot contain '/' (the CLI reads RUN/INVOCATION/OUTPUT, "
            "so its runs, steps and outputs could not be addressed)"
        )
    if len(name) > 100:
        raise ConfigurationError(f"{where}: name= is longer than 100 characters ({len(name)})")
    return name
