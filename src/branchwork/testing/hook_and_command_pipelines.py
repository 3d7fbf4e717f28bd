"""The conformance suite's pipelines with run-level hooks and command steps.

At module level, like `branchwork.testing.pipelines`, so that an orchestration process or a
step process imports them again. Hooks write to the file the run's `log_path` parameter names
(a hook runs where the run's loop runs, which may be another process than the test's).
"""

from __future__ import annotations

import sys
from pathlib import Path

from branchwork import PipelineHookContext, command_step, pipeline, step


class ConformanceHookError(RuntimeError):
    """Raised on purpose by an on_start hook."""


def log_hook(context: PipelineHookContext) -> None:
    with open(context.parameters["log_path"], "a", encoding="utf-8") as log:
        log.write(f"{context.hook} {context.status} {context.run_id}\n")


def refuse_to_start(context: PipelineHookContext) -> None:
    raise ConformanceHookError(f"run {context.run_name} may not start")


@step
def triple(value: int) -> int:
    return 3 * value


@pipeline(on_start=log_hook, on_success=log_hook, on_failure=log_hook, on_end=log_hook)
def hooked(log_path: str, value: int) -> int:
    """Invocation ids: triple. Hooks: on_start, on_success, on_end."""
    return triple(value)


@pipeline(on_start=refuse_to_start, on_end=log_hook)
def refused(log_path: str, value: int) -> int:
    """No invocation runs: on_start raises. Hooks: on_end (failed)."""
    return triple(value)


# Writes "<prefix>:<count>" to out/result.txt and says so on stdout and stderr.
write_result = command_step(
    name="write_result",
    command=[
        sys.executable,
        "-c",
        "import os, sys\nos.makedirs('out')\nopen('out/result.txt', 'w').write(sys.argv[1])\n"
        "print('wrote', sys.argv[1])\nprint('to stderr', file=sys.stderr)",
        "{prefix}:{count}",
    ],
    outputs={"result": "out/result.txt"},
)

exit_code_three = command_step(name="exit_code_three", command=[sys.executable, "-c", "exit(3)"])


@step
def read_result(path: Path) -> str:
    return path.read_text()


@pipeline
def command_then_python(prefix: str, value: int) -> str:
    """Invocation ids: triple, write_result, read_result. The command gets a parameter and a
    future's value; its file output reaches the Python step as a local path."""
    return read_result(write_result(prefix=prefix, count=triple(value)))


@pipeline
def failing_command() -> None:
    """Invocation ids: exit_code_three, which exits with code 3."""
    exit_code_three()
