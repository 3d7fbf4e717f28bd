"""Pipelines for the reliability tests, in a module of their own: a resumed run and an
orchestration process load them again by their recorded source. Side effects go to files
named by parameters, so counts survive processes."""

from __future__ import annotations

import os
import time
from pathlib import Path

from branchwork import FileInput, pipeline, step


def _log(folder: str, line: str) -> None:
    with open(Path(folder, "executions.log"), "a") as handle:
        handle.write(line + "\n")


@step
def item_count(n: int) -> int:
    return n


@step
def process_item(folder: str, i: int, block_on: int) -> int:
    """Blocks item `block_on` until `<folder>/go` exists; the side effect is written last."""
    if i == block_on:
        Path(folder, "blocked").write_text(str(os.getpid()))
        while not Path(folder, "go").exists():
            time.sleep(0.02)
    if Path(folder, f"fail-{i}").exists():
        raise RuntimeError(f"item {i} is told to fail")
    _log(folder, f"item {i}")
    return i * i


@step
def sum_items(values: list) -> int:
    return sum(values)


@pipeline
def fan_out(folder: str, n: int, block_on: int = -1):
    count = item_count(n)
    return sum_items([process_item(folder, i, block_on) for i in range(count)])


@pipeline
def read_each(folder: str, n: int, block_on: int = -1):
    """Reads each item's value before calling the next: a loop over values, as users write."""
    kept = []
    for i in range(n):
        output = process_item(folder, i, block_on)
        if output.load() >= 0:
            kept.append(output)
    return sum_items(kept)


@step
def variant_a(x: int) -> int:
    return x + 1


@step
def variant_b(x: int) -> int:
    return x + 2


@pipeline
def switching(folder: str):
    """Which step `second` names depends on a file: a pipeline that is not deterministic."""
    first = item_count(3)
    if Path(folder, "use-b").exists():
        second = variant_b(first, id="second")
    else:
        second = variant_a(first, id="second")
    if Path(folder, "fail-last").exists() and second > 0:  # fails once 'second' has run
        raise RuntimeError("the body fails after 'second'")
    return second


@step
def read_value(folder: str) -> int:
    """Data from outside the pipeline: the number in `<folder>/value`."""
    _log(folder, "read")
    return int(Path(folder, "value").read_text())


@step
def plus_one(x: int) -> int:
    return x + 1


@step
def fail_if_told(folder: str, x: int) -> int:
    if Path(folder, "fail-last").exists():
        raise RuntimeError("told to fail")
    return x


@pipeline
def recomputed(folder: str):
    """A step after `read_value` through data, and one called with a value the body read."""
    after_data = plus_one(read_value(folder))
    after_read = plus_one(after_data.load() * 10, id="after_read")
    return fail_if_told(folder, after_read)


@step
def read_text(path: FileInput) -> str:
    return Path(path).read_text()


@pipeline
def reads_a_file(folder: str):
    """Reads `data.txt` by a path relative to where it runs, then fails while
    `<folder>/fail-last` exists."""
    text = read_text("data.txt")
    if len(text) > 0:  # dynamic: a value read
        return fail_if_told(folder, len(text))
    return 0
