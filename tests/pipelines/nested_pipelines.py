"""Pipelines that call pipelines (tests/pipelines/test_nested_pipelines.py), in a module of
their own so that isolated orchestrators can import them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from branchwork import pipeline, step

FAIL_FLAG = "NESTED_FAIL_FLAG"  # a file: while it exists, `fragile` fails


@step
def numbers(n: int) -> list:
    return list(range(n))


@step
def add(values: list) -> int:
    return sum(values)


@step
def fragile(value: int) -> int:
    flag = os.environ.get(FAIL_FLAG)
    if flag and Path(flag).exists():
        raise RuntimeError(f"fragile failed on {value}")
    return value * 10


@pipeline
def child_sum(n: int) -> Any:
    """Static: add(numbers(n))."""
    return add(numbers(n))


@pipeline
def child_fragile(n: int) -> Any:
    return fragile(add(numbers(n)))


@pipeline
def parent(n: int) -> Any:
    """Dynamic: a child run called (waited for), two submitted side by side, one embedded."""
    first = child_sum(n)
    second = child_sum.submit(n + 1)
    third = child_sum.submit(n + 2, id="third")
    inner = child_sum.embed(n)
    return add([first, second, third, inner])


@pipeline
def static_parent(n: int) -> Any:
    """Static: its children are submitted, never waited for in the body."""
    return add([child_sum.submit(n), child_sum.submit(n)])


@pipeline
def parent_of_fragile(n: int) -> Any:
    return add([child_fragile(n), child_sum(n)])


@pipeline
def countdown(n: int) -> Any:
    """Calls itself n times: n + 1 runs, each the child of the one before."""
    if n == 0:
        return add([])
    return countdown(n - 1)


@pipeline
def endless(n: int) -> Any:
    """Calls itself without end."""
    return endless(n + 1)
