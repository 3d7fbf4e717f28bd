"""Loading the user's code in a process that runs it for a run: where it lives, and the rule
that loading it never starts runs.

A script often ends with a top-level call of its pipeline and no `if __name__ == "__main__":`
guard. An orchestration process (or a step process, or a resume) that imports that script to
find its pipeline would run that call again, submit a new run, whose orchestration process
imports the script again... So while branchwork imports user code (`importing_user_code()`),
a pipeline call raises `ImportStopped`: the import ends there and the loader uses what the
module defined by then, which is usually the pipeline it came for. `BRANCHWORK_DEPTH` counts
orchestration processes started from orchestration processes, as a last line of defence.

Where code lives: the folders a run needs on `sys.path` to import its pipeline again (the
script's folder, the working directory, PYTHONPATH entries) are the user's entries of
`sys.path`, recorded with the run and put back in every process that loads it.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache

DEPTH_ENV = "BRANCHWORK_DEPTH"
SCRIPT_MODULE = "__branchwork_main__"  # a script that ran as __main__, loaded elsewhere
MAX_DEPTH_ENV = "BRANCHWORK_MAX_DEPTH"


class ImportStopped(BaseException):
    """A pipeline was called while branchwork imported user code; the import stops there.

    A BaseException, so that a module's `except Exception:` cannot swallow it."""

    def __init__(self, pipeline_name: str, location: str) -> None:
        super().__init__(f"pipeline '{pipeline_name}' called at {location} while imported")
        self.pipeline_name = pipeline_name
        self.location = location


_importing: ContextVar[bool] = ContextVar("branchwork_importing_user_code", default=False)


@contextmanager
def importing_user_code() -> Iterator[None]:
    """While this block runs, a pipeline call raises ImportStopped instead of running."""
    token = _importing.set(True)
    try:
        yield
    finally:
        _importing.reset(token)


def is_importing_user_code() -> bool:
    return _importing.get()


def process_depth() -> int:
    """How many orchestration processes started this one (0 in a user's own process)."""
    try:
        return int(os.environ.get(DEPTH_ENV, "0"))
    except ValueError:
        return 0


def max_depth() -> int:
    return int(os.environ.get(MAX_DEPTH_ENV, "8"))


@lru_cache(maxsize=1)
def _installed_roots() -> tuple[str, ...]:
    """Folders of the standard library and installed packages: not the user's code."""
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    return tuple(os.path.realpath(root) + os.sep for root in roots)


def user_import_path() -> list[str]:
    """The folders of `sys.path` that hold the user's code, absolute ('' is the working
    directory), in order."""
    entries: list[str] = []
    for entry in sys.path:
        folder = os.path.abspath(entry or os.getcwd())
        if not os.path.isdir(folder):
            continue  # zip files, missing folders
        real = os.path.realpath(folder) + os.sep
        if real.startswith(_installed_roots()):
            continue
        entries.append(folder)
    return list(dict.fromkeys(entries))


def extend_import_path(entries: list[str]) -> None:
    """Put recorded folders that exist here in front of `sys.path`, in their order."""
    missing = [e for e in entries if e and e not in sys.path and os.path.isdir(e)]
    sys.path[:0] = missing
