"""Pipelines for the S3 store tests. They live in a module of their own because an
orchestration process imports them again by their recorded source."""

from __future__ import annotations

from branchwork import pipeline, step


@step
def numbers(n: int) -> list[int]:
    return list(range(n))


@step(runtime="isolated")
def square(x: int) -> int:
    print(f"squaring {x}")
    return x * x


@step(runtime="isolated")
def total(values: list[int]) -> int:
    return sum(values)


@pipeline
def squares(n: int = 3) -> int:
    """A dynamic fan-out and fan-in: one `square` per item of an output, summed."""
    return total([square(x) for x in numbers(n)])


@step(runtime="isolated")
def fail_after_reading(values: list[int]) -> int:
    print(f"read {values}")
    raise ValueError(f"cannot use {values}")


@pipeline
def failing() -> int:
    """An artifact written in the orchestration process, read in an isolated step that
    prints and fails."""
    return fail_after_reading(numbers(2))
