"""The root command: version, help, completion, the console script, and error handling."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from branchwork import __version__
from branchwork.cli.app import error_line
from branchwork.exceptions import BranchworkError, PipelineRunFailedError


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"branchwork {__version__}"


def test_help_lists_the_commands_and_completion(cli):
    result = cli("--help")
    assert result.exit_code == 0
    for name in ("init", "run", "runs", "artifacts", "db", "--install-completion", "--debug"):
        assert name in result.stdout
    lines = [" ".join(line.strip("│ ").split()) for line in result.stdout.splitlines()]
    for line in (
        "runs List, inspect, draw and delete pipeline runs.",
        "artifacts List, inspect and load artifact versions.",
        "cache Control the cache: invalidate a step's results.",
        "db The metadata store's location and schema.",
        "stack Register, list, describe, set and delete stacks.",
        "orchestrator Register and list orchestrators.",
        "artifact-store Register and list artifact stores.",
    ):
        assert line in lines


def test_a_mistyped_command_names_the_close_ones(cli):
    result = cli("rns", "list")
    assert result.exit_code == 2
    assert "No such command 'rns'. Did you mean 'runs', 'run'?" in result.output


def test_a_command_imports_only_its_own_module(tmp_path):
    """`branchwork runs list` does not pay for importing the dashboard, stacks or artifacts
    commands (nor the pipeline runtime), only for its own."""
    code = (
        "import sys\n"
        "sys.argv = ['branchwork', 'runs', 'list']\n"
        "from branchwork.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('branchwork.'))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "BRANCHWORK_HOME": str(tmp_path / "home")},
    )
    output, loaded = done.stdout.rsplit("\n", 2)[-3:-1]
    assert output == "No runs yet."
    assert "branchwork.cli.runs" in loaded.split()
    for module in (
        "branchwork.cli.artifacts",
        "branchwork.cli.dashboard",
        "branchwork.cli.stacks",
        "branchwork.cli.db",
        "branchwork.runtime.engine",
        "branchwork.steps.step",
    ):
        assert module not in loaded.split()


def test_no_command_shows_help_and_unknown_command_is_a_usage_error(cli):
    assert "Usage" in cli().output
    result = cli("frobnicate")
    assert result.exit_code == 2
    assert "No such command" in result.output


def test_installed_console_script_prints_the_version():
    script = Path(sys.executable).parent / "branchwork"
    done = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"branchwork {__version__}"


def test_console_script_errors_are_one_line_with_exit_code_1(tmp_path):
    script = Path(sys.executable).parent / "branchwork"
    done = subprocess.run(
        [str(script), "runs", "show", "no-such-run"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr == (
        "Error: No pipeline run with id or name 'no-such-run', nor one starting with it; "
        "`branchwork runs list` shows the runs.\n"
    )
    assert done.stdout == ""


def _command_paths() -> list[list[str]]:
    """Every command of the app, as the words that name it (`["runs", "show"]`)."""
    import typer

    from branchwork.cli.app import app

    def walk(command: object, path: list[str]) -> list[list[str]]:
        found = [path]
        for name, sub in getattr(command, "commands", {}).items():  # a group's
            found += walk(sub, [*path, name])
        return found

    return walk(typer.main.get_command(app), [])


@pytest.mark.parametrize("path", _command_paths(), ids=" ".join)
def test_every_commands_help_prints(cli, path):
    """Help texts are Rich markup: `RUN/INVOCATION[/OUTPUT]` unescaped crashed with a
    MarkupError."""
    result = cli(*path, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage: branchwork" in " ".join(result.stdout.split())


@pytest.mark.parametrize("args", [["runs", "--help"], ["runs", "list"]])
def test_output_into_a_reader_that_stopped_reading_ends_quietly(args):
    """`branchwork runs --help | head -1`: the reader is gone before the command writes.
    The command stops with exit code 1 and nothing on stderr (it printed "Error:
    BrokenPipeError ...")."""
    script = Path(sys.executable).parent / "branchwork"
    read, write = os.pipe()
    os.close(read)  # the reader has gone
    try:
        done = subprocess.run(
            [str(script), *args], stdout=write, stderr=subprocess.PIPE, timeout=60, check=False
        )
    finally:
        os.close(write)
    assert (done.returncode, done.stderr.decode()) == (1, "")


def test_importing_branchwork_does_not_import_the_cli():
    code = "import sys, branchwork; assert not [m for m in sys.modules if 'branchwork.cli' in m]"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_an_error_is_one_line_on_stderr_with_exit_code_1(cli, assert_error):
    result = cli("runs", "show", "no-such-run")
    assert assert_error(result).startswith("Error: No pipeline run with id or name 'no-such-run'")
    assert result.stdout == ""


def test_debug_shows_the_exception_instead(cli):
    result = cli("--debug", "runs", "show", "no-such-run")
    assert result.exit_code == 1
    assert isinstance(result.exception, BranchworkError)
    assert "Error:" not in result.stderr


def test_error_line_keeps_the_first_line_and_names_foreign_exception_types():
    failed = PipelineRunFailedError("Pipeline 'p' failed: step 's' raised\ntraceback...", "r", "s")
    assert error_line(failed) == "Pipeline 'p' failed: step 's' raised"
    assert error_line(KeyError("x")) == "KeyError: 'x'"
    assert error_line(RuntimeError()) == "RuntimeError"


@pytest.mark.parametrize("args", [["runs", "list", "--limit", "0"], ["runs", "list", "-o", "xml"]])
def test_bad_option_values_are_usage_errors(cli, args):
    assert cli(*args).exit_code == 2


def test_error_line_masks_passwords_in_urls():
    error = BranchworkError("Cannot open 'postgresql://me:s3cret@db:5432/x': refused")
    assert error_line(error) == "Cannot open 'postgresql://me:***@db:5432/x': refused"
