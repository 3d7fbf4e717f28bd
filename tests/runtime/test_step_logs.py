"""Each step's stdout, stderr and logging records are captured and attributed to it, also
when steps run side by side in threads or in their own processes."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from branchwork import Client, get_step_context, log_metadata, pipeline, step
from branchwork.config import StepRetryConfig
from branchwork.exceptions import BranchworkError
from processes import python_env

log = logging.getLogger("chatty")


@step
def chatty(i: int) -> int:
    for k in range(3):
        print(f"out {i}.{k}")
        print(f"err {i}.{k}", file=sys.stderr)
        log.warning("log %d.%d", i, k)
        time.sleep(0.01)
    return i


@step(runtime="isolated")
def chatty_isolated(i: int) -> int:
    print(f"isolated out {i}")
    log.error("isolated log %d", i)
    return i


@pipeline(enable_cache=False)
def eight_chatty():
    return [chatty(i) for i in range(8)]


def test_logs_of_eight_parallel_steps_are_attributed_to_their_step(capsys):
    assert eight_chatty() == list(range(8))
    logs = Client().get_step_logs(eight_chatty.last_run.id)
    assert len(logs) == 8
    for i in range(8):
        text = logs["chatty" if i == 0 else f"chatty_{i + 1}"]
        lines = text.splitlines()
        expected = {f"out {i}.{k}" for k in range(3)} | {f"err {i}.{k}" for k in range(3)}
        expected |= {f"WARNING chatty: log {i}.{k}" for k in range(3)}
        assert set(lines) == expected, text
    assert "out 3.2" in capsys.readouterr().out  # the console still shows it


def test_logs_of_isolated_steps_are_captured_in_their_process():
    from branchwork.orchestrators import LocalProcessOrchestrator
    from branchwork.stack import Stack, active_stack, get_active_stack

    stack = Stack("lp", LocalProcessOrchestrator(), get_active_stack().artifact_store)
    with active_stack(stack):
        isolated_chat_module_level()
    logs = Client().get_step_logs(isolated_chat_module_level.last_run.id, "chatty_isolated")
    assert logs == {"chatty_isolated": "isolated out 5\nERROR chatty: isolated log 5\n"}


@pipeline(enable_cache=False)
def isolated_chat_module_level():
    return chatty_isolated(5)


def run_script(tmp_path, body: str) -> subprocess.CompletedProcess[str]:
    """Run `body` after a tiny pipeline has run, as a user's script (its own process)."""
    script = tmp_path / "script.py"
    script.write_text(
        "import logging\n"
        "from branchwork import pipeline, step\n"
        "from branchwork.config import ResourceSettings\n"
        "@step\ndef one() -> int:\n    return 1\n"
        "@pipeline(enable_cache=False)\ndef tiny():\n    return one()\n"
        "if __name__ == '__main__':\n"
        "    tiny()\n" + textwrap.indent(textwrap.dedent(body), "    ")
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done


def test_a_warning_logged_after_a_run_still_reaches_stderr(tmp_path):
    done = run_script(tmp_path, 'logging.getLogger("x").warning("after the run")')
    assert "after the run" in done.stderr


def test_basic_config_after_a_run_still_configures_logging(tmp_path):
    done = run_script(
        tmp_path,
        """
        logging.basicConfig(level=logging.INFO, format="BASIC %(message)s")
        logging.getLogger("x").info("configured after the run")
        """,
    )
    assert "BASIC configured after the run\n" in done.stderr


def test_the_warning_about_an_oversized_step_is_shown(tmp_path):
    done = run_script(
        tmp_path,
        """
        @step(settings={"resources": ResourceSettings(cpu_count=10_000)})
        def huge(x: int) -> int:
            return x

        @pipeline(enable_cache=False)
        def with_huge_step():
            return huge(one())

        print(with_huge_step())
        """,
    )
    assert done.stdout.strip() == "1"
    assert "Step 'huge' asks for" in done.stderr
    assert "more than this machine offers" in done.stderr


own_handler_log = logging.getLogger("own_handler")


@step
def logs_to_own_handler(name: str) -> str:
    for k in range(3):
        own_handler_log.warning("%s says %d", name, k)
        time.sleep(0.01)
    return name


@pipeline(enable_cache=False)
def side_by_side():
    return [logs_to_own_handler(name) for name in ("left", "right")]


def test_records_of_a_logger_that_does_not_propagate_go_to_their_own_step(capsys, monkeypatch):
    monkeypatch.setattr(own_handler_log, "propagate", False)
    own_handler = logging.StreamHandler(sys.stderr)
    own_handler_log.addHandler(own_handler)
    try:
        assert side_by_side() == ["left", "right"]
    finally:
        own_handler_log.removeHandler(own_handler)
    logs = Client().get_step_logs(side_by_side.last_run.id)
    for invocation, name in (("logs_to_own_handler", "left"), ("logs_to_own_handler_2", "right")):
        assert logs[invocation] == "".join(
            f"WARNING own_handler: {name} says {k}\n" for k in range(3)
        )
    assert "right says 2\n" in capsys.readouterr().err  # its own handler still prints it


filtered_log = logging.getLogger("filtered")


class Redacting(logging.Filter):
    """What a user's filter does to keep secrets out of logs, and noise out of them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "noise" in record.getMessage():
            return False
        if "password" in record.getMessage():
            record.msg, record.args = "[REDACTED]", ()
        return True


@step
def connects() -> int:
    filtered_log.warning("connecting with password=%s", "hunter2")
    filtered_log.warning("this is noise")
    filtered_log.warning("connected")
    logging.getLogger("filtered.child").warning("password=%s", "swordfish")  # handler's filter
    return 1


@pipeline(enable_cache=False)
def connecting():
    return connects()


def test_a_loggers_filters_apply_to_the_step_log():
    """A filter that redacts a secret or drops a record: the step's log held the record as
    it was made, the password in plain text in the store."""
    redacting, on_the_handler = Redacting(), logging.StreamHandler(sys.stderr)
    on_the_handler.addFilter(Redacting())  # a child logger's records pass the handlers only
    filtered_log.addFilter(redacting)
    logging.getLogger().addHandler(on_the_handler)
    try:
        assert connecting() == 1
    finally:
        filtered_log.removeFilter(redacting)
        logging.getLogger().removeHandler(on_the_handler)
    logs = Client().get_step_logs(connecting.last_run.id)
    assert logs["connects"] == (
        "WARNING filtered: [REDACTED]\n"
        "WARNING filtered: connected\n"
        "WARNING filtered.child: [REDACTED]\n"
    )


shared_pool = ThreadPoolExecutor(max_workers=1)  # kept for the process, as users' pools are


@step
def downloads(parts: int) -> int:
    print("main: starting")
    with ThreadPoolExecutor(max_workers=1) as pool:  # one: its lines in order
        list(pool.map(lambda k: log.warning("worker: fetched part %d", k), range(parts)))
    helper = threading.Thread(target=print, args=("thread: done",))
    helper.start()
    helper.join()
    shared_pool.submit(print, f"shared pool: part of {parts}").result()
    return parts


@pipeline(enable_cache=False)
def downloading():
    return downloads(2), downloads(3, after="downloads")


def test_threads_a_step_starts_write_into_its_log_and_no_other(capsys):
    """The docs say everything written through sys.stdout, sys.stderr and logging is
    captured: what a step's worker threads wrote was not (a new thread's context is empty).
    The shared pool's one thread was started by the first step: work the second submits to
    it is the second's, and work submitted outside any step is no step's."""
    assert downloading() == (2, 3)
    logs = Client().get_step_logs(downloading.last_run.id)
    assert logs["downloads"] == (
        "main: starting\n"
        "WARNING chatty: worker: fetched part 0\n"
        "WARNING chatty: worker: fetched part 1\n"
        "thread: done\n"
        "shared pool: part of 2\n"
    )
    assert logs["downloads_2"] == (
        "main: starting\n"
        "WARNING chatty: worker: fetched part 0\n"
        "WARNING chatty: worker: fetched part 1\n"
        "WARNING chatty: worker: fetched part 2\n"
        "thread: done\n"
        "shared pool: part of 3\n"
    )
    shared_pool.submit(print, "outside any step").result()
    logs = Client().get_step_logs(downloading.last_run.id)
    assert "outside" not in logs["downloads"] + logs["downloads_2"]
    assert "outside any step\n" in capsys.readouterr().out  # on the console, as always


def test_a_record_that_cannot_be_formatted_is_noted_and_does_not_fail_the_step(tmp_path):
    done = run_script(
        tmp_path,
        """
        from branchwork import Client

        @step
        def logs_badly() -> int:
            logging.getLogger("bad.format").warning("rows=%d", "many")
            return 1

        @pipeline(enable_cache=False)
        def badly_logged():
            return logs_badly()

        print(badly_logged())
        print(Client().get_step_logs(badly_logged.last_run.id)["logs_badly"], end="")
        """,
    )
    result, step_log = done.stdout.split("\n", 1)
    assert result == "1"
    assert "\nWARNING bad.format: rows=%d (could not format it: " in step_log, step_log
    assert "--- Logging error ---" in done.stderr  # Python still reports it as it always did


@step
def measured() -> int:
    context = get_step_context()
    log_metadata({"rows": 120, "source": "s3://bucket/x", "attempt": context.attempt})
    return 1


@step
def bad_metadata() -> int:
    log_metadata({"handle": object()})
    return 1


def test_log_metadata_is_recorded_on_the_step_run():
    @pipeline(enable_cache=False)
    def with_metadata():
        return measured()

    with_metadata()
    assert with_metadata.last_run.steps["measured"].run_metadata == {
        "rows": 120,
        "source": "s3://bucket/x",
        "attempt": 1,
    }


def test_log_metadata_refuses_values_that_cannot_be_recorded():
    @pipeline(enable_cache=False)
    def with_bad_metadata():
        return bad_metadata()

    with pytest.raises(Exception) as info:
        with_bad_metadata()
    assert isinstance(info.value.__cause__, BranchworkError)
    assert "'handle'" in str(info.value.__cause__)
    assert "log_metadata" in str(info.value.__cause__)


@step(retry=StepRetryConfig(max_retries=2, delay=0))
def logs_then_fails_twice() -> int:
    attempt = get_step_context().attempt
    log_metadata({"attempt_logged": attempt})
    if attempt < 3:
        raise RuntimeError(f"attempt {attempt} fails")
    return attempt


def test_log_metadata_of_a_retried_attempt_is_kept():
    """A retried attempt's row was written again as 'retried' without its metadata."""

    @pipeline(enable_cache=False)
    def third_time_lucky():
        return logs_then_fails_twice()

    assert third_time_lucky() == 3
    attempts = third_time_lucky.last_run.attempts
    assert [(a.attempt, str(a.status), a.run_metadata) for a in attempts] == [
        (1, "retried", {"attempt_logged": 1}),
        (2, "retried", {"attempt_logged": 2}),
        (3, "completed", {"attempt_logged": 3}),
    ]
    assert all(a.start_time is not None and a.start_time <= a.end_time for a in attempts)


@step(retry=StepRetryConfig(max_retries=1, delay=0))
def second_time_lucky() -> int:
    attempt = get_step_context().attempt
    print(f"attempt {attempt}")
    if attempt == 1:
        raise RuntimeError("first attempt fails")
    return attempt


@pipeline(enable_cache=False)
def retried():
    return second_time_lucky()


def test_the_logs_of_an_earlier_attempt_can_be_read():
    """Only the latest attempt's logs could be read; the first attempt's were kept but out
    of reach of `runs logs` and the Client."""
    from typer.testing import CliRunner

    from branchwork.cli.app import app

    assert retried() == 2
    run = retried.last_run
    cli = CliRunner()

    def logs(*args: str):
        return cli.invoke(app, ["runs", "logs", run.name, *args])

    assert logs("second_time_lucky").stdout == "attempt 2\n"
    assert logs("second_time_lucky", "--attempt", "1").stdout == "attempt 1\n"
    assert Client().get_step_logs(run, "second_time_lucky", attempt=1) == {
        "second_time_lucky": "attempt 1\n"
    }
    beyond = logs("second_time_lucky", "--attempt", "3")
    assert beyond.exit_code == 1
    assert beyond.stderr == (
        f"Error: Invocation 'second_time_lucky' of run '{run.name}' has no attempt 3 (it has 2).\n"
    )
    assert logs("--attempt", "1").exit_code == 2  # an attempt of which step?


@step
def exits(n: int) -> int:
    print(f"checking {n} rows")
    print("ERROR: 3 rows have no id", file=sys.stderr)
    log_metadata({"bad_rows": 3})
    sys.exit("validation failed")


@step(runtime="isolated")
def exits_isolated(n: int) -> int:
    print(f"checking {n} rows")
    sys.exit("validation failed")


@pipeline(enable_cache=False)
def exiting(isolated: bool = False):
    return exits_isolated(5) if isolated else exits(5)


@pytest.mark.parametrize("isolated", [False, True])
def test_a_step_that_exits_keeps_what_it_printed_and_logged(isolated):
    """`sys.exit("...")` in a step: a failure, recorded with its logs (they were lost: the
    escaping SystemExit skipped collecting them), when a user needs them most."""
    from branchwork.orchestrators import LocalProcessOrchestrator
    from branchwork.stack import Stack, active_stack, get_active_stack

    stack = Stack("lp", LocalProcessOrchestrator(), get_active_stack().artifact_store)
    with active_stack(stack), pytest.raises(Exception) as info:
        exiting(isolated=isolated)
    assert "raised SystemExit: validation failed" in str(info.value)
    run = exiting.last_run
    name = "exits_isolated" if isolated else "exits"
    logs = Client().get_step_logs(run.id, name)
    if isolated:
        assert logs == {name: "checking 5 rows\n"}
    else:
        assert logs == {name: "checking 5 rows\nERROR: 3 rows have no id\n"}
        assert run.steps[name].run_metadata == {"bad_rows": 3}


SET_UP_SCRIPT = """
import logging, warnings
from branchwork import pipeline, step
from branchwork.orchestrators import LocalProcessOrchestrator
from branchwork.stack import Stack, active_stack, get_active_stack

logging.basicConfig(level=logging.INFO)
logging.getLogger("myapp").setLevel(logging.DEBUG)
warnings.filterwarnings("ignore", message="noisy")
log = logging.getLogger("myapp")

@step(runtime="isolated")
def configured() -> int:
    log.debug("debug detail")
    logging.getLogger("other").info("progress 50%")
    warnings.warn("noisy library warning")
    warnings.warn("a warning that matters")
    return 1

@pipeline(enable_cache=False)
def set_up():
    return configured()

if __name__ == "__main__":
    stack = Stack("lp", LocalProcessOrchestrator(), get_active_stack().artifact_store)
    with active_stack(stack):
        set_up()
"""


def test_an_isolated_step_logs_at_the_levels_and_with_the_filters_its_script_set(
    tmp_path, monkeypatch
):
    """Its process never ran the script's set-up: its DEBUG and INFO records were dropped,
    and the warning the script silenced was in its log."""
    script = tmp_path / "set_up.py"
    script.write_text(SET_UP_SCRIPT)
    home = tmp_path / "home"
    done = subprocess.run(
        [sys.executable, str(script)],
        env=python_env(home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    monkeypatch.setenv("BRANCHWORK_HOME", str(home))
    logs = Client().get_step_logs("latest")["configured"]
    lines = logs.splitlines()
    assert lines[:2] == ["DEBUG myapp: debug detail", "INFO other: progress 50%"]
    assert "a warning that matters" in logs and "noisy" not in logs
