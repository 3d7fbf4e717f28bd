"""Shared by the scheduling tests (start_after, async steps, concurrency limits): a driver
for the pure engine that plays the loop's part, the most steps running at once from their
own start/end records, and the stacks the real runs use."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from branchwork.orchestrators import LocalOrchestrator, LocalProcessOrchestrator
from branchwork.runtime.engine import Engine
from branchwork.runtime.events import (
    Added,
    Command,
    ComputeKey,
    FailureMode,
    KeyComputed,
    Launch,
    Missed,
    Request,
)
from branchwork.stack import Stack, active_stack, get_active_stack

ORCHESTRATORS = ["local", "local_process"]


def added(invocation_id: str, deps: Iterable[str] = (), **fields: Any) -> Added:
    """An `Added` event: step name = the id without its `_n` suffix, no cache."""
    return Added(invocation_id, invocation_id.split("_")[0], "code", tuple(deps), **fields)


def engine(
    workers: int = 8, mode: FailureMode = FailureMode.STOP_ON_FAILURE, cpus: float = 2
) -> Engine:
    return Engine(Request(cpus, 0, 0), workers, failure_mode=mode)


def drive(core: Engine, *events: Any) -> list[Command]:
    """Feed events and answer every key request with a cache miss, as the loop does; the
    commands, without the key requests and verdicts."""
    out: list[Command] = []
    commands = core.handle(*events)
    while commands:
        out.extend(commands)
        keys = [KeyComputed(c.invocation_id, "k") for c in commands if isinstance(c, ComputeKey)]
        commands = core.handle(*keys) if keys else []
    return [c for c in out if not isinstance(c, (ComputeKey, Missed))]


def launched(commands: list[Command]) -> list[str]:
    return [c.invocation_id for c in commands if isinstance(c, Launch)]


def most_at_once(windows: Iterable[tuple[float, float]]) -> int:
    """The most (start, end) windows open at one moment; one that ends when another starts
    does not overlap it."""
    moments = sorted([(start, 1) for start, _ in windows] + [(end, -1) for _, end in windows])
    running = most = 0
    for _, change in moments:
        running += change
        most = max(most, running)
    return most


def window(started: float) -> dict[str, float]:
    """What a step of these tests returns: when it started and when it ended."""
    return {"start": started, "end": time.time()}


def windows(records: Iterable[dict[str, float]]) -> list[tuple[float, float]]:
    return [(record["start"], record["end"]) for record in records]


@contextmanager
def on(flavor: str, **settings: Any) -> Iterator[Stack]:
    """The active stack runs pipelines on `flavor` (local or local_process)."""
    kind = LocalOrchestrator if flavor == "local" else LocalProcessOrchestrator
    stack = Stack(flavor, kind(**settings), get_active_stack().artifact_store)
    with active_stack(stack):
        yield stack
