"""Command steps: real commands run as steps, with parameters and futures rendered into their
command line and environment, logs captured, files stored as outputs, cached and retried."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import command_pipelines as cp
import pytest

from branchwork import Client, FileInput, command_step, pipeline, step
from branchwork.exceptions import (
    CommandFailedError,
    ConfigurationError,
    PipelineRunFailedError,
    StepInvocationError,
)


@pytest.fixture(autouse=True)
def temporary_files_under_tmp_path(tmp_path, monkeypatch):
    """Working directories, and the files `make_data` writes, go under the test's folder, in
    this process and in orchestration processes."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))


@pytest.fixture
def script(tmp_path) -> Path:
    path = tmp_path / "train.py"
    path.write_text(cp.SCRIPT)
    return path


def script_runs(script: Path) -> list[str]:
    """The working directory of each run of the script."""
    runs = Path(f"{script}.runs")
    return runs.read_text().splitlines() if runs.exists() else []


def test_a_script_runs_with_parameters_and_futures_and_its_files_flow_downstream(
    script, local_flavor
):
    model, metrics = cp.train_and_read(script=str(script), lr=0.5, n=4)
    assert model == "model lr=0.5 seed=7 rows=4"
    assert metrics == '{"rows": 4}'
    run = cp.train_and_read.last_run
    assert {name: str(s.status) for name, s in run.steps.items()} == dict.fromkeys(
        ["make_data", "train", "read_text", "read_text_2"], "completed"
    )
    outputs = run.steps["train"].outputs
    assert set(outputs) == {"model", "metrics"}
    assert outputs["model"].load().read_text() == model
    assert run.steps["read_text"].inputs["path"].id == outputs["model"].id
    logs = Client().get_step_logs(run.id, "train")["train"]
    assert "trained on 4 rows\n" in logs and "a warning from the script\n" in logs
    # each attempt ran in a working directory of its own, deleted once its outputs were stored
    (workdir,) = script_runs(script)
    assert not Path(workdir).exists()


def test_a_failing_command_fails_the_step_with_its_exit_code_and_last_stderr_lines(local_flavor):
    with pytest.raises(PipelineRunFailedError) as info:
        cp.failing_command()
    cause = info.value.__cause__
    assert type(cause) is CommandFailedError and cause.returncode == 3
    last_lines = "\n".join(f"error line {i}" for i in range(10, 30))
    assert str(cause).startswith("Command step 'exit_three' (invocation 'exit_three'): ")
    assert str(cause).endswith(f" exited with code 3; last lines of stderr:\n{last_lines}")
    assert "error line 9\n" not in str(cause)
    run = cp.failing_command.last_run
    assert run.failed_step == "exit_three" and run.exception_type == "CommandFailedError"
    assert "error line 0\n" in Client().get_step_logs(run.id)["exit_three"]


def test_a_failing_command_is_retried_like_any_step(tmp_path, local_flavor):
    marker = tmp_path / "fail-once"
    marker.touch()
    assert cp.flaky(marker=str(marker)) == "done"
    attempts = [str(a.status) for a in cp.flaky.last_run.attempts if a.name == "flaky_command"]
    assert attempts == ["retried", "completed"]


def test_a_command_in_a_process_of_its_own_stores_its_output_and_logs():
    from branchwork.orchestrators import LocalProcessOrchestrator
    from branchwork.stack import Stack, active_stack, get_active_stack

    store = get_active_stack().artifact_store
    with active_stack(Stack("lp", LocalProcessOrchestrator(), store)):
        echoed = cp.isolated(n=42)
    assert echoed.name == "echo.txt" and echoed.read_text() == ""
    run = cp.isolated.last_run
    assert Client().get_step_logs(run.id)["isolated_echo"] == "42\n"


def test_the_cache_follows_the_command_its_arguments_and_its_input_files(script):
    cp.train_and_read(script=str(script))
    cp.train_and_read(script=str(script))
    assert len(script_runs(script)) == 1
    assert str(cp.train_and_read.last_run.steps["train"].status) == "cached"

    cp.train_and_read(script=str(script), lr=0.2)  # an argument
    assert len(script_runs(script)) == 2

    script.write_text(cp.SCRIPT + "# changed\n")  # the script, passed as a FileInput
    cp.train_and_read(script=str(script), lr=0.2)
    assert len(script_runs(script)) == 3
    decisions = Client().get_cache_decisions(cp.train_and_read.last_run.id)
    assert decisions["train"].verdict == "miss"
    assert f"input file '{script}' changed" in (decisions["train"].reason or "")


def test_a_changed_command_template_is_a_cache_miss_that_names_it():
    def echo_step(word: str):
        return command_step(name="echo_word", command=["echo", word, "{n}"])

    def echo_pipeline(word: str):
        echo = echo_step(word)

        @pipeline(name="echo_pipeline")
        def run_echo(n: int) -> None:
            echo(n=n)

        return run_echo

    echo_pipeline("hello")(n=1)
    second = echo_pipeline("hello")
    second(n=1)
    assert str(second.last_run.steps["echo_word"].status) == "cached"
    third = echo_pipeline("goodbye")
    third(n=1)
    decision = Client().get_cache_decisions(third.last_run.id)["echo_word"]
    assert decision.verdict == "miss"
    assert (decision.reason or "").endswith(": code changed: command")


def test_outside_a_pipeline_it_runs_the_command_and_returns_its_outputs(script, tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("1\n2\n")
    model, metrics = cp.train(script=FileInput(str(script)), lr=1, data=data, seed=3)
    assert model.read_text() == "model lr=1.0 seed=3 rows=2"
    assert model.parent.parent == metrics.parent == Path(script_runs(script)[0])


def test_a_missing_output_file_fails_the_step_naming_it(tmp_path):
    forgetful = command_step(name="forgetful", command=["true"], outputs={"report": "report.txt"})

    @pipeline
    def forgets() -> Path:
        return forgetful()

    with pytest.raises(PipelineRunFailedError) as info:
        forgets()
    assert str(info.value.__cause__).startswith(
        "Command step 'forgetful' (invocation 'forgetful'): the command exited 0 but wrote "
        "nothing at 'report.txt' for its output 'report'"
    )


def test_a_value_that_has_no_command_line_form_is_refused():
    listing = command_step(name="listing", command=["echo", "{items}"])

    @step
    def items() -> list[int]:
        return [1, 2]

    @pipeline
    def lists() -> None:
        listing(items=items())

    with pytest.raises(PipelineRunFailedError) as info:
        lists()
    assert type(info.value.__cause__) is StepInvocationError
    assert str(info.value.__cause__).startswith(
        "Command step 'listing' (invocation 'listing'): argument 'items' is a list ([1, 2]); "
        "a command line takes strings, numbers and paths."
    )


def test_a_format_spec_its_value_does_not_fit_names_the_placeholder(capfd):
    """It was a bare "Unknown format code 'g' for object of type 'str'"."""
    printing = command_step(name="printing", command=["echo", "lr={lr:.3g}"])
    printing(lr=0.00123)  # a float fits it
    assert capfd.readouterr().out == "lr=0.00123\n"
    with pytest.raises(StepInvocationError) as info:
        printing(lr="0.001")
    assert str(info.value) == (
        "Command step 'printing': placeholder {lr:.3g} in 'lr={lr:.3g}' cannot format "
        "'0.001' (str): Unknown format code 'g' for object of type 'str'"
    )


def test_a_command_that_cannot_start_says_so():
    missing = command_step(name="missing", command=["no-such-program-branchwork", "{x}"])
    with pytest.raises(CommandFailedError, match="could not start no-such-program-branchwork 1"):
        missing(x=1)


def test_a_command_that_exists_but_is_not_executable_says_so(tmp_path):
    tool = tmp_path / "tool"
    tool.write_text("#!/bin/sh\necho hi\n")
    tool.chmod(0o644)
    run = command_step(name="run", command=["{tool}"])
    with pytest.raises(CommandFailedError) as info:
        run(tool=tool)
    assert str(info.value) == (
        f"Command step 'run': could not start {tool}: [Errno 13] Permission denied. "
        f"'{tool}' exists but is not executable: give it execute permission (chmod +x) or "
        "run it through its interpreter (sh, python, ...)."
    )


def test_an_executable_a_step_built_runs_in_the_next_step(local_flavor):
    """Its copy (alone, or in a folder) keeps the execute permission `chmod +x` gave it."""
    cp.built_tool()
    run = cp.built_tool.last_run
    assert {name: str(s.status) for name, s in run.steps.items()} == dict.fromkeys(
        ["build_tool", "run_tool", "run_tool_in"], "completed"
    )
    logs = Client().get_step_logs(run.id)
    assert logs["run_tool"] == logs["run_tool_in"] == "the tool ran\n"
    outputs = run.steps["build_tool"].outputs
    assert os.access(outputs["tool"].load(), os.X_OK)
    assert os.access(outputs["folder"].load() / "bin" / "tool", os.X_OK)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"command": "python train.py"},
            "Command step 'bad': command= must be a non-empty list of arguments",
        ),
        (
            {"command": ["echo", "{}"]},
            "the placeholder {} must be a parameter name",
        ),
        (
            {"command": ["echo", "{data.path}"]},
            "the placeholder {data.path} must be a parameter name",
        ),
        ({"command": ["echo", "{oops"]}, "is not a valid template"),
        ({"command": ["true"], "outputs": {"a-b": "x"}}, "output name 'a-b' must be an identifier"),
        ({"command": ["true"], "env": {"A=B": "x"}}, "env= has the key 'A=B'"),
        (
            {"command": ["true"], "output_materializers": {}},
            "output_materializers does not apply",
        ),
    ],
)
def test_a_bad_definition_fails_at_once(options, message):
    with pytest.raises(ConfigurationError) as info:
        command_step(name="bad", **options)
    assert str(info.value).startswith("Command step 'bad'") and message in str(info.value)


def test_its_parameters_are_its_placeholders_by_keyword():
    @pipeline
    def positional() -> None:
        cp.train("train.py", 0.1, "data", 7)

    with pytest.raises(PipelineRunFailedError) as info:
        positional()
    assert type(info.value.__cause__) is StepInvocationError
    assert "too many positional arguments. Its signature is train(*, script, lr, data, seed)" in (
        str(info.value.__cause__)
    )
    assert list(cp.train.signature.parameters) == ["script", "lr", "data", "seed"]
    assert sys.executable in cp.train.source


# ---- what a command leaves running ----------------------------------------------------------

# Each starts a minute-long `sleep` in the background, writes its pid to {pidfile}, and exits.
leaves_a_child_on_its_output = command_step(
    name="leaves_a_child_on_its_output",
    command=["bash", "-c", "sleep 60 & echo $! > {pidfile}; echo started; exit 3"],
)
# `setsid` takes the child out of the command's group; the command exits once it has.
leaves_a_child_of_its_own_session = command_step(
    name="leaves_a_child_of_its_own_session",
    command=[
        "bash",
        "-c",
        "setsid sleep 60 & child=$!; "
        'until [ "$(cut -d" " -f6 /proc/$child/stat)" = "$child" ]; do sleep 0.01; done; '
        "echo $child > {pidfile}; echo started",
    ],
)
# Its output goes through a process that bash does not wait for, and writes a moment later.
writes_through_a_late_reader = command_step(
    name="writes_through_a_late_reader",
    command=["bash", "-c", "exec > >(sleep 0.2; cat); echo line"],
)


def _ended(pid: int) -> bool:
    """Whether the process is gone (or a zombie its new parent has yet to reap)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _wait_until_ended(pid: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not _ended(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _kill(pidfile: Path) -> None:
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
        os.kill(int(pidfile.read_text()), signal.SIGKILL)


needs_proc = pytest.mark.skipif(
    not Path("/proc").is_dir(), reason="reads process states from /proc"
)


@needs_proc
def test_the_step_ends_with_its_command_and_what_holds_its_output_is_killed(tmp_path):
    """The background child holds the command's output open: the step waited for it (a
    minute here; for ever for a server). Now the step ends half a second after the command,
    its exit code and output recorded, and the child is killed."""

    @pipeline
    def leaves_a_child(pidfile: str) -> None:
        leaves_a_child_on_its_output(pidfile=pidfile)

    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    try:
        with pytest.raises(PipelineRunFailedError) as info:
            leaves_a_child(pidfile=str(pidfile))
        took = time.monotonic() - started
        cause = info.value.__cause__
        assert type(cause) is CommandFailedError and cause.returncode == 3
        run = leaves_a_child.last_run
        assert Client().get_step_logs(run.id)["leaves_a_child_on_its_output"] == "started\n"
        assert took < 10, f"the step waited for the child its command left: {took:.1f} s"
        assert _wait_until_ended(int(pidfile.read_text()))
    finally:
        _kill(pidfile)


@needs_proc
def test_a_child_in_a_session_of_its_own_is_left_running_and_the_step_still_ends(tmp_path):
    """`setsid` takes it out of the command's group: it is the user's to end. It holds the
    command's output open, which the step reads for a moment after the command exits."""
    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    try:
        leaves_a_child_of_its_own_session(pidfile=str(pidfile))
        assert time.monotonic() - started < 10
        assert not _ended(int(pidfile.read_text()))
    finally:
        _kill(pidfile)


def test_output_written_just_after_the_command_exited_is_kept():
    @pipeline
    def late_output() -> None:
        writes_through_a_late_reader()

    late_output()
    logs = Client().get_step_logs(late_output.last_run.id)
    assert logs["writes_through_a_late_reader"] == "line\n"


def _run_script(tmp_path: Path, setup: str) -> list[str]:
    """Run, in a process of its own after `setup`, a command step that leaves a child on its
    output and one that exits 4; what they printed, and how the second failed."""
    script = tmp_path / "script.py"
    script.write_text(
        "import os, signal\n"
        "from branchwork import command_step\n"
        f"{setup}\n"
        "echo = command_step(name='echo', command=['bash', '-c', 'sleep 60 & echo {x}'])\n"
        "fails = command_step(name='fails', command=['bash', '-c', 'echo out; exit 4'])\n"
        "for call in (lambda: echo(x='hello'), fails):\n"
        "    try:\n"
        "        call()\n"
        "    except Exception as error:\n"
        "        print(type(error).__name__, error.returncode, error)\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_a_command_step_runs_where_the_system_has_no_waitid(tmp_path):
    """macOS before Python 3.13 has no os.waitid."""
    lines = _run_script(tmp_path, "del os.waitid")
    assert lines[:2] == ["hello", "out"]
    assert lines[2] == (
        "CommandFailedError 4 Command step 'fails': bash -c 'echo out; exit 4' exited with "
        "code 4; last lines of stderr:"
    )


def test_a_command_step_is_refused_while_the_process_ignores_sigchld(tmp_path):
    """The system then reaps the command itself and its exit status is lost: a command that
    failed read as exit 0, a success."""
    lines = _run_script(tmp_path, "signal.signal(signal.SIGCHLD, signal.SIG_IGN)")
    assert len(lines) == 2
    for line, argv in zip(lines, ("bash -c 'sleep 60 & echo hello'", "bash -c 'echo out; exit 4'")):
        assert line.startswith("CommandFailedError None Command step ")
        assert f"cannot run {argv} while this process ignores SIGCHLD" in line
        assert line.endswith(
            "Restore the default first: signal.signal(signal.SIGCHLD, signal.SIG_DFL)."
        )


def test_a_command_gets_the_default_sigpipe():
    """The launcher is Python, which ignores SIGPIPE, and exec keeps ignored signals: `yes`
    writing into a closed pipe complained "Broken pipe" instead of ending quietly."""
    pipe = command_step(name="pipe", command=["bash", "-c", "yes | head -1"])

    @pipeline
    def pipes() -> None:
        pipe()

    pipes()
    assert Client().get_step_logs(pipes.last_run.id)["pipe"] == "y\n"
