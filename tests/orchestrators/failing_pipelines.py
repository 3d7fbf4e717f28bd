"""Pipelines whose steps raise, for the tests of errors across processes. They live in a
module of their own because an orchestration process imports them again by their source."""

from __future__ import annotations

import sys

from branchwork import pipeline, step


class NeedsKeywords(Exception):
    """An exception that cannot be rebuilt from its arguments."""

    def __init__(self, *, code: int) -> None:
        super().__init__(f"failed with code {code}")
        self.code = code


@step(enable_cache=False)
def raises(kind: str, isolated: bool = False) -> int:
    if kind == "value":
        raise ValueError("bad value 3")
    if kind == "keywords":
        raise NeedsKeywords(code=7)
    if kind == "exit":
        sys.exit("schema check failed: column 'id' missing")
    raise KeyError(("not", "json", {1, 2}))  # arguments JSON cannot carry


isolated_raises = raises.with_options(runtime="isolated")


@pipeline(enable_cache=False)
def failing(kind: str = "value"):
    return raises(kind)


@pipeline(enable_cache=False)
def failing_isolated(kind: str = "value"):
    return isolated_raises(kind)
