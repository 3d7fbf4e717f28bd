"""When a pickled artifact may be unpickled.

Unpickling runs code chosen by whoever wrote the file, so it must not happen just because an
artifact store (a shared bucket) holds one. A pickle loads:

- inside a pipeline run (a step's inputs, the values the pipeline body reads): the run's own
  data flow, which only ever reads artifacts recorded in the metadata store;
- in the process that wrote it;
- when the user says so: `allow_pickle=True`, `branchwork artifacts load --allow-pickle`, or
  the environment variable `BRANCHWORK_ALLOW_PICKLE=1`.

Whenever the content hash recorded at save time is known, the files are checked against it
before anything is unpickled, so a pickle swapped in the artifact store is refused even then.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

from branchwork.exceptions import ArtifactError

if TYPE_CHECKING:
    from branchwork.materializers.base import BaseMaterializer

ALLOW_PICKLE_ENV = "BRANCHWORK_ALLOW_PICKLE"

_pickled_here: set[str] = set()  # artifact URIs this process wrote a pickle into


@dataclass(frozen=True)
class _Load:
    """The artifact being loaded: whether it may be unpickled, and the hash to check first."""

    materializer: BaseMaterializer
    allowed: bool
    content_hash: str | None


_current: ContextVar[_Load | None] = ContextVar("branchwork_artifact_load", default=None)


def remember_pickled(uri: str) -> None:
    """This process wrote a pickle under `uri`: it may load it back."""
    _pickled_here.add(uri)


def recorded_as(uri: str, recorded_uri: str) -> None:
    """The artifact saved under `uri` is recorded under `recorded_uri` (kept inline): a pickle
    this process wrote there stays its own."""
    if uri in _pickled_here:
        _pickled_here.add(recorded_uri)


def allowed_by_user(allow_pickle: bool) -> bool:
    """Whether the caller (`allow_pickle`) or the environment allows unpickling."""
    return allow_pickle or os.environ.get(ALLOW_PICKLE_ENV, "") not in ("", "0")


@contextmanager
def loading(
    materializer: BaseMaterializer, allowed: bool, content_hash: str | None
) -> Iterator[None]:
    """Within the block, `check_unpickling` judges pickles against this artifact."""
    token = _current.set(_Load(materializer, allowed, content_hash))
    try:
        yield
    finally:
        _current.reset(token)


def check_unpickling() -> None:
    """Raise ArtifactError unless the artifact being loaded may be unpickled.

    A materializer used directly (not through `load_artifact`) is the caller's own choice.
    """
    load = _current.get()
    if load is None:
        return
    uri = load.materializer.uri
    if not (load.allowed or uri in _pickled_here):
        raise ArtifactError(
            f"Refusing to unpickle the artifact at {uri}: it is stored as a pickle, and "
            "unpickling runs code from the artifact store. If you trust whoever can write "
            "there, allow it: `load(allow_pickle=True)`, `branchwork artifacts load "
            f"--allow-pickle`, or {ALLOW_PICKLE_ENV}=1."
        )
    if load.content_hash is not None:
        found = load.materializer.content_hash()
        if found != load.content_hash:
            raise ArtifactError(
                f"Refusing to unpickle the artifact at {uri}: its files no longer match the "
                f"content hash recorded when it was saved ({load.content_hash[:12]}…, now "
                f"{found[:12]}…): they were changed in the artifact store."
            )
