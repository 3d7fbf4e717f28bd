"""Pipelines for the S3 store tests. They live in a module of their own because an
orchestration process imports them again by their recorded source.

Small outputs are kept in the metadata store (`artifact_stores.inline`); `table`'s is padded
past INLINE_LIMIT, so it is a file in the bucket that another process reads."""

from __future__ import annotations

from branchwork import pipeline, step
from branchwork.artifact_stores.inline import INLINE_LIMIT


@step
def numbers(n: int) -> list[int]:
    return list(range(n))


@step(runtime="isolated")
def square(x: int) -> int:
    print(f"squaring {x}")
    return x * x


@step
def table(values: list[int]) -> str:
    """One value a line, each padded to INLINE_LIMIT characters: a file in the bucket,
    written by the orchestration process."""
    return "".join(f"{value:<{INLINE_LIMIT}}\n" for value in values)


def read_table(text: str) -> list[int]:
    return [int(line) for line in text.splitlines()]


@step(runtime="isolated")
def total(text: str) -> int:
    return sum(read_table(text))


@pipeline
def squares(n: int = 3) -> int:
    """A dynamic fan-out and fan-in: one `square` per item of an output, tabled (a file in
    the bucket) and summed in another process."""
    return total(table([square(x) for x in numbers(n)]))


@step(runtime="isolated")
def fail_after_reading(text: str) -> int:
    values = read_table(text)
    print(f"read {values}")
    raise ValueError(f"cannot use {values}")


@pipeline
def failing() -> int:
    """An artifact written to the bucket by the orchestration process, read in an isolated
    step that prints and fails."""
    return fail_after_reading(table(numbers(2)))
