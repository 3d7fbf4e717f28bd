"""Pipelines to replay, at module level so that a replay (and an orchestration process)
imports them again by their recorded source. Each step appends a line to
`<folder>/executions.log`, so a test sees what ran again and what was reused."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from branchwork import pipeline, step


def executions(folder: Path) -> Counter[str]:
    log = folder / "executions.log"
    return Counter(log.read_text().splitlines()) if log.exists() else Counter()


def _log(folder: str, line: str) -> None:
    with open(Path(folder, "executions.log"), "a") as handle:
        handle.write(line + "\n")


@step
def load(folder: str, n: int) -> list[int]:
    _log(folder, "load")
    return list(range(1, n + 1))


@step
def train(folder: str, data: list[int], lr: float = 0.01) -> float:
    _log(folder, f"train lr={lr}")
    return sum(data) * lr


@step
def evaluate(folder: str, score: float) -> str:
    _log(folder, f"evaluate {score}")
    return f"score={score:g}"


@step
def describe(folder: str, n: int) -> str:
    _log(folder, "describe")
    return f"n={n}"


@step
def publish(folder: str, n: int) -> str:
    """Called only when the score is positive: after `train` through a value, not an input."""
    _log(folder, "publish")
    return f"published {n}"


@pipeline
def tuning(folder: str, n: int = 3):
    data = load(folder, n)
    score = train(folder, data)
    summary = evaluate(folder, score)
    note = describe(folder, n)
    flag = publish(folder, n) if score > 0 else None
    return summary, note, flag


@step
def watch(folder: str) -> str:
    _log(folder, "watch")
    return "watched"


@pipeline
def watched(folder: str):
    """A sidecar that starts with `train`: it runs again when `train` does."""
    data = load(folder, 3)
    score = train(folder, data)
    return score, watch(folder, start_after=score)


@step
def part(folder: str, i: int, scale: int = 1) -> int:
    _log(folder, f"part {i} x{scale}")
    return i * scale


@step
def total(values: list[int]) -> int:
    return sum(values)


@pipeline
def parts(folder: str, n: int = 3):
    return total([part(folder, i) for i in range(n)])


@pipeline
def two_reads(folder: str):
    """Reads `train`'s score, calls, then reads `describe`'s note and calls again: the
    second call comes after both values, though only `describe` was read since the first."""
    score = train(folder, load(folder, 3))
    note = describe(folder, 3)
    first = evaluate(folder, 1.0) if score > 0 else None
    second = evaluate(folder, 2.0) if note else None
    return first, second
