"""Riding out a store that goes away for a moment: a PostgreSQL server restarting, a SQLite
file locked by another process.

Every read and write on a run's path goes through `retrying`: a transient error (the
connection dropped, the server refused it, the file is locked) is retried with backoff for
up to `$BRANCHWORK_STORE_RETRY_SECONDS` (30 s); after that, `StoreUnavailableError` names
the store and says the run can be resumed. Writes are safe to repeat: the recorder's inserts
ignore rows already there (a commit that succeeded while its acknowledgement was lost), and
its updates set values rather than change them.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Engine, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from branchwork.config.heartbeat import retry_window, stale_after
from branchwork.exceptions import StoreUnavailableError

P = ParamSpec("P")
R = TypeVar("R")

logger = logging.getLogger("branchwork")

_FIRST_DELAY = 0.05
_MAX_DELAY = 2.0


def is_transient(error: BaseException) -> bool:
    """Errors that another attempt may not meet: a lost or refused connection, a lock."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, (OperationalError, InterfaceError))


def retrying(what: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Retry the decorated store operation (whose first argument is the engine, or has an
    `engine`) as the module docstring says; `what` names it in messages."""

    def decorate(operation: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(operation)
        def retried(*args: P.args, **kwargs: P.kwargs) -> R:
            deadline = time.monotonic() + retry_window()
            delay = _FIRST_DELAY
            while True:
                try:
                    return operation(*args, **kwargs)
                except DBAPIError as error:
                    if not is_transient(error):
                        raise
                    if time.monotonic() + delay > deadline:
                        raise _unavailable(args[0], what, error) from error
                    if delay == _FIRST_DELAY:
                        logger.warning(
                            "The metadata store is unavailable while %s (%s); retrying for up "
                            "to %gs.",
                            what,
                            _first_line(error),
                            retry_window(),
                        )
                    time.sleep(delay)
                    delay = min(2 * delay, _MAX_DELAY)

        return retried

    return decorate


def _unavailable(owner: Any, what: str, error: DBAPIError) -> StoreUnavailableError:
    engine: Engine = owner if isinstance(owner, Engine) else owner.engine
    url = make_url(engine.url).render_as_string(hide_password=True)
    return StoreUnavailableError(
        f"The metadata store at {url!r} was unavailable for over {retry_window():g}s while "
        f"{what}: {_first_line(error)}. Once it is back, resume the run "
        f"(`branchwork runs resume RUN`: it reads failed {stale_after():g}s after this "
        "process's last heartbeat); what was recorded is kept."
    )


def _first_line(error: DBAPIError) -> str:
    text = str(error.orig).strip().splitlines()
    return text[0] if text else type(error.orig).__name__
