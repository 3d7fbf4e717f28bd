"""Fixtures for the CLI tests: the real Typer app, invoked in-process against the real store."""

from __future__ import annotations

import json
import re
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
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


PROGRESS_LINE = re.compile(r"^\[\s*\d+\.\ds\] \S+: \d+ discovered, ")


def _progress_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if PROGRESS_LINE.match(line)]


@pytest.fixture
def progress_lines() -> Callable[[str], list[str]]:
    """`progress_lines(stderr)`: the plain progress lines `run` / `runs resume` print on
    stderr when not on a terminal."""
    return _progress_lines


def _assert_error(result: Result, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.strip().splitlines() if not PROGRESS_LINE.match(line)]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def assert_error() -> Callable[..., str]:
    """`assert_error(result, *fragments)`: exit code 1 and exactly one `Error: ...` line on
    stderr (besides progress lines) containing every fragment, no traceback; returns it."""
    return _assert_error


@pytest.fixture
def pipeline_file(tmp_path, monkeypatch) -> Callable[[str, str], Path]:
    """`pipeline_file("name", source)` writes `source` to a fresh folder as name.py and returns
    its path, for `run`/`graph` targets (`run` puts the file's folder on sys.path)."""
    monkeypatch.setattr(sys, "path", list(sys.path))

    def write(name: str, source: str) -> Path:
        folder = tmp_path / f"project_{name}"
        folder.mkdir()
        path = folder / f"{name}.py"
        path.write_text(textwrap.dedent(source))
        return path

    return write
