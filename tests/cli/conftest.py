"""Fixtures for the CLI tests: the real Typer app, invoked in-process against the real store."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from branchwork.cli.app import app


@pytest.fixture(autouse=True)
def plain_terminal(monkeypatch):
    """Output as a pipe gets it: no colour codes, no width from the outer terminal."""
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS", "BRANCHWORK_DEBUG"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def cli() -> Callable[..., Result]:
    """`cli("runs", "list")` -> the Result; `input=` feeds stdin."""
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(app, list(args), input=input)

    return invoke


@pytest.fixture
def cli_json(cli) -> Callable[..., Any]:
    """Invoke a command with `--output json`, check it succeeded, return the parsed JSON."""

    def invoke(*args: str) -> Any:
        result = cli(*args, "--output", "json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    return invoke


def _assert_error(result: Result, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def assert_error() -> Callable[..., str]:
    """`assert_error(result, *fragments)`: exit code 1 and exactly one `Error: ...` line on
    stderr containing every fragment, no traceback; returns that line."""
    return _assert_error
