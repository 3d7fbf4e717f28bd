"""Pipelines with run-level hooks, at module level so that an orchestration process (and a
resume) imports them again. Hooks and steps append one JSON line each to the file the run's
`log` parameter names, so a test sees what ran, in which order and in which process."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from branchwork import PipelineHookContext, pipeline, step


class Refused(RuntimeError):
    pass


def write_line(log: str, **line: Any) -> None:
    with open(log, "a", encoding="utf-8") as file:
        file.write(json.dumps({**line, "pid": os.getpid()}) + "\n")


def lines(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def note(context: PipelineHookContext) -> None:
    """Every hook but on_failure: the context as the hook saw it."""
    write_line(
        context.parameters["log"],
        hook=context.hook,
        run_id=context.run_id,
        run_name=context.run_name,
        pipeline=context.pipeline_name,
        parameters=context.parameters,
        status=context.status,
        error=repr(context.error) if context.error else None,
        resumed=context.resumed,
    )


def note_failure(error: BaseException, context: PipelineHookContext) -> None:
    write_line(
        context.parameters["log"],
        hook=context.hook,
        status=context.status,
        error=f"{type(error).__name__}: {error}",
        same_error=error is context.error,
    )


def refuse(context: PipelineHookContext) -> None:
    raise Refused("no licence for this run")


def exits(context: PipelineHookContext) -> None:
    sys.exit(3)


def broken_report(context: PipelineHookContext) -> None:
    raise ValueError(f"cannot report {context.hook}")


@step
def add_one(x: int, log: str, fail_marker: str) -> int:
    write_line(log, step="add_one")
    if fail_marker and os.path.exists(fail_marker):
        raise Refused(f"marker {fail_marker} exists")
    return x + 1


@pipeline(
    dynamic=False,
    on_start=note,
    on_success=note,
    on_failure=note_failure,
    on_end=note,
    enable_cache=False,
)
def hooked_static(log: str, x: int = 1, fail_marker: str = "") -> int:
    return add_one(x, log, fail_marker)


@pipeline(on_start=note, on_success=note, on_failure=note_failure, on_end=note, enable_cache=False)
def hooked_dynamic(log: str, x: int = 1, fail_marker: str = "") -> int:
    first = add_one(x, log, fail_marker)
    return add_one(first, log, "") if first > 0 else first  # uses a value: dynamic


@pipeline(on_start=refuse, on_failure=note_failure, on_end=note, enable_cache=False)
def refused_start(log: str, x: int = 1) -> int:
    return add_one(x, log, "")


@pipeline(on_start=exits, on_failure=note_failure, on_end=note, enable_cache=False)
def exiting_start(log: str, x: int = 1) -> int:
    return add_one(x, log, "")


@pipeline(on_success=broken_report, on_end=broken_report, enable_cache=False)
def broken_reports(log: str, x: int = 1) -> int:
    return add_one(x, log, "")
