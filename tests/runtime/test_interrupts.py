"""Ctrl-C, as a user sends it: SIGINT to a real `branchwork run` or `python script.py`.

The first Ctrl-C says what it is doing, launches nothing new and lets running steps finish;
the run ends STOPPED. A second one ends the process within about a second, recording the
running attempts and the run STOPPED. On every orchestrator, and never a run left `running`.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
import weakref
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from branchwork import pipeline, step
from branchwork.runtime.interrupts import Terminated, sigterm_stops_the_run, stop_on_interrupt
from processes import Spawned, python, python_env, wait_until

EXAMPLES = Path(__file__).parents[2] / "examples" / "custom_orchestrator"
BRANCHWORK = str(Path(sys.executable).parent / "branchwork")

PIPELINES = """
import sys, time
from pathlib import Path
from branchwork import command_step, pipeline, step
from branchwork.materializers import BaseMaterializer

@step(enable_cache=False)
def nap(i: int, seconds: float) -> int:
    time.sleep(seconds)
    return i

@step(enable_cache=False)
def after(values: list) -> int:
    return len(values)

@pipeline(enable_cache=False)
def sleepy(n: int = 16, seconds: float = 20.0):
    return [nap(i, seconds) for i in range(n)]

@pipeline(enable_cache=False)
def chained(seconds: float = 2.0):
    first = nap(0, seconds)
    return after([first])

@pipeline(enable_cache=False)
def nested(n: int = 2, seconds: float = 20.0):
    return sleepy(n, seconds)

# A command step whose command writes its pid to a file, then sleeps for a minute.
long_command = command_step(
    name="long_command",
    command=[sys.executable, "-c", "import os, sys, time; "
             "open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)", "{pid_file}"],
    enable_cache=False,
)

@pipeline(enable_cache=False)
def commanding(pid_file: str = "command.pid", runtime: str = "inline"):
    return long_command.with_options(runtime=runtime)(pid_file=pid_file)

class Report:
    pass

class SlowReportMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES = (Report,)

    def save(self, data):
        Path("saving").write_text("")  # in the test's folder
        time.sleep(60)

@step(enable_cache=False, output_materializers=SlowReportMaterializer)
async def write_report() -> Report:
    return Report()

@pipeline(enable_cache=False)
def reporting():
    return write_report()

@pipeline(enable_cache=False)
def mixed(seconds: float = 0.2, width: int = 4):
    first = [nap(i, seconds * (i % 3)) for i in range(width)]
    total = after(first)
    return [nap(i, seconds) for i in range(int(total))]
"""

CALLER = """
import sys
sys.path.insert(0, {examples!r})
from pipelines import {name}
from branchwork.stack import Stack, active_stack, get_active_stack

def orchestrator(flavor):
    if flavor == "local_process":
        from branchwork.orchestrators import LocalProcessOrchestrator
        return LocalProcessOrchestrator()
    if flavor == "custom":
        from my_orchestrator import MyOrchestrator
        return MyOrchestrator()
    from branchwork.orchestrators import LocalOrchestrator
    return LocalOrchestrator()

store = get_active_stack().artifact_store
with active_stack(Stack("s", orchestrator(sys.argv[1]), store)):
    print("returned", {name}({params}))
"""

ORCHESTRATORS = ["local", "local_process", "custom"]


class Store:
    """Reads the store a test's processes write, with plain SQL."""

    def __init__(self, home: Path) -> None:
        self.engine = create_engine(f"sqlite:///{home / 'branchwork.db'}")

    def rows(self, sql: str) -> list[tuple]:
        try:
            with self.engine.connect() as conn:
                return [tuple(row) for row in conn.execute(text(sql))]
        except Exception:  # not created yet
            return []

    def runs(self) -> list[tuple]:
        return self.rows("SELECT name, status FROM pipeline_run")

    def steps(self, status: str | None = None) -> list[tuple]:
        where = f"WHERE status = '{status}'" if status else ""
        return self.rows(f"SELECT name, status FROM step_run {where} ORDER BY name")

    def running(self) -> int:
        return len(self.steps("running"))


def project(tmp_path: Path) -> tuple[Path, Store]:
    (tmp_path / "pipelines.py").write_text(PIPELINES)
    home = tmp_path / "home"
    return home, Store(home)


def caller(tmp_path: Path, name: str, params: str = "") -> Path:
    script = tmp_path / f"call_{name}.py"
    script.write_text(CALLER.format(examples=str(EXAMPLES), name=name, params=params))
    return script


def test_branchwork_run_stops_after_two_ctrl_c_within_a_second(tmp_path):
    home, store = project(tmp_path)
    command = [BRANCHWORK, "run", "pipelines.py:sleepy", "--no-progress"]
    with Spawned(command, env=python_env(home), cwd=tmp_path) as run:
        wait_until(lambda: store.running() == 16, 60, "16 running steps")
        run.signal(signal.SIGINT)
        time.sleep(1.0)
        assert run.process.poll() is None and store.running() == 16  # they run on
        run.signal(signal.SIGINT)
        interrupted = time.monotonic()
        code, out, err = run.wait(10)
        took = time.monotonic() - interrupted
    assert "stopping: 16 steps still running — Ctrl-C again to abandon them" in err
    assert "abandoning 16 running steps: the run is recorded stopped" in err
    assert took < 1.0, f"the second Ctrl-C took {took:.2f}s"
    assert code == 130
    assert "Status: stopped" in out
    assert [status for _, status in store.runs()] == ["stopped"]
    assert {status for _, status in store.steps()} == {"stopped"} and len(store.steps()) == 16
    show = [BRANCHWORK, "runs", "show", "latest"]
    with Spawned(show, env={**python_env(home), "COLUMNS": "200"}, cwd=tmp_path) as shown:
        code, out, err = shown.wait(60)
    assert code == 0, err
    assert "Reason        stopped by Ctrl-C" in out  # where the body waited is not the user's
    assert "Traceback" not in out and "Failed step" not in out


@pytest.mark.parametrize("flavor", ORCHESTRATORS)
def test_one_ctrl_c_lets_running_steps_finish_and_starts_nothing_new(tmp_path, flavor):
    home, store = project(tmp_path)
    script = caller(tmp_path, "chained", "seconds=3.0")
    with Spawned(python(str(script), flavor), env=python_env(home), cwd=tmp_path) as run:
        wait_until(lambda: store.running() == 1, 60, "the first step running")
        run.signal(signal.SIGINT)
        code, out, err = run.wait(60)
    assert "stopping: 1 step still running — Ctrl-C again to abandon them" in err
    assert "KeyboardInterrupt" in err and "returned" not in out
    assert code != 0
    assert [status for _, status in store.runs()] == ["stopped"]
    assert store.steps() == [("nap", "completed")]  # finished; `after` never launched


@pytest.mark.parametrize("flavor", ORCHESTRATORS)
def test_two_ctrl_c_abandon_running_steps_on_every_orchestrator(tmp_path, flavor):
    home, store = project(tmp_path)
    script = caller(tmp_path, "sleepy", "n=3, seconds=60.0")
    with Spawned(python(str(script), flavor), env=python_env(home), cwd=tmp_path) as run:
        wait_until(lambda: store.running() == 3, 60, "3 running steps")
        run.signal(signal.SIGINT)
        time.sleep(0.3)
        run.signal(signal.SIGINT)
        interrupted = time.monotonic()
        code, _, err = run.wait(20)
        took = time.monotonic() - interrupted
        wait_until(lambda: not run.alive(), 10, "every process it started to end")
    assert took < 1.5, f"the second Ctrl-C took {took:.2f}s"
    assert "abandoning 3 running steps" in err
    assert [status for _, status in store.runs()] == ["stopped"]
    assert store.steps() == [("nap", "stopped"), ("nap_2", "stopped"), ("nap_3", "stopped")]


@pytest.mark.parametrize(
    "command",
    [
        ["python", "call_sleepy.py", "local"],
        [BRANCHWORK, "run", "pipelines.py:sleepy", "-p", "n=3", "--no-progress"],
    ],
)
def test_sigterm_to_a_process_running_its_loop_records_the_run_stopped(tmp_path, command):
    """A script or `branchwork run` on the local orchestrator: the process died on the spot
    and the run read `running` until found lost (30 s later, with steps that could not be
    resumed or deleted meanwhile)."""
    home, store = project(tmp_path)
    caller(tmp_path, "sleepy", "n=3, seconds=60.0")
    command = [sys.executable if part == "python" else part for part in command]
    with Spawned(command, env=python_env(home), cwd=tmp_path) as run:
        wait_until(lambda: store.running() == 3, 60, "3 running steps")
        run.signal(signal.SIGTERM)
        code, _, err = run.wait(20)
    assert code == (143 if command[0] == BRANCHWORK else 1)
    assert "abandoning 3 running steps: the run is recorded stopped" in err
    assert [status for _, status in store.runs()] == ["stopped"]
    assert store.steps() == [("nap", "stopped"), ("nap_2", "stopped"), ("nap_3", "stopped")]
    assert store.rows("SELECT exception_type, exception_message FROM pipeline_run") == [
        ("Terminated", "stopped by SIGTERM")
    ]


@pytest.mark.parametrize("flavor", ["local", "local_process"])
def test_two_ctrl_c_do_not_wait_for_an_async_step_saving_its_output(tmp_path, flavor):
    home, store = project(tmp_path)
    script = caller(tmp_path, "reporting")
    with Spawned(python(str(script), flavor), env=python_env(home), cwd=tmp_path) as run:
        wait_until((tmp_path / "saving").exists, 60, "the output's save to start")
        run.signal(signal.SIGINT)
        time.sleep(0.3)
        run.signal(signal.SIGINT)
        interrupted = time.monotonic()
        run.wait(20)
        took = time.monotonic() - interrupted
        wait_until(lambda: not run.alive(), 10, "every process it started to end")
    assert took < 1.5, f"the second Ctrl-C took {took:.2f}s"  # the save sleeps a minute
    assert [status for _, status in store.runs()] == ["stopped"]
    assert store.steps() == [("write_report", "stopped")]


@pytest.mark.parametrize("flavor", ["local", "local_process"])
@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_stops_a_child_run_with_its_parent(tmp_path, flavor, presses):
    """A child run (`pipelines.nesting`) stops with its parent: once, its running steps
    finish; twice, they are abandoned. Neither run is left running."""
    home, store = project(tmp_path)
    script = caller(tmp_path, "nested", "n=2, seconds=4.0" if presses == 1 else "n=2")
    with Spawned(python(str(script), flavor), env=python_env(home), cwd=tmp_path) as run:
        wait_until(lambda: store.running() == 3, 60, "the child run's 2 steps running")
        for _ in range(presses):
            run.signal(signal.SIGINT)
            time.sleep(0.3)
        interrupted = time.monotonic()
        code, out, err = run.wait(60)
        took = time.monotonic() - interrupted
        wait_until(lambda: not run.alive(), 10, "every process it started to end")
    assert code != 0 and "returned" not in out
    runs = store.runs()
    assert len(runs) == 2 and {status for _, status in runs} == {"stopped"}, (runs, err)
    expected = "completed" if presses == 1 else "stopped"
    assert store.steps("running") == [], (store.steps(), err)
    assert store.rows("SELECT name, status FROM step_run WHERE name LIKE 'nap%' ORDER BY name") == [
        ("nap", expected),
        ("nap_2", expected),
    ]
    # the parent's invocation of the child stopped with it, and the parent failed no step
    assert store.rows("SELECT status FROM step_run WHERE name = 'sleepy'") == [("stopped",)]
    assert store.rows("SELECT failed_step FROM pipeline_run WHERE parent_run_id IS NULL") == [
        (None,)
    ]
    if presses == 2:  # bounded by the wait for the child run to record its end (5 s)
        assert took < 10.0, f"the second Ctrl-C took {took:.2f}s"


@pytest.mark.parametrize("runtime", ["inline", "isolated"])
def test_two_ctrl_c_leave_no_command_of_a_command_step_running(tmp_path, runtime):
    """An abandoned command step's command (a process of its own) dies with the step: it does
    not run on, orphaned, after the run's process has exited."""
    home, store = project(tmp_path)
    pid_file = tmp_path / "command.pid"
    script = caller(tmp_path, "commanding", f"pid_file={str(pid_file)!r}, runtime={runtime!r}")
    with Spawned(python(str(script), "local"), env=python_env(home), cwd=tmp_path) as run:
        wait_until(lambda: pid_file.exists() and pid_file.read_text(), 60, "the command")
        command = int(pid_file.read_text())
        run.signal(signal.SIGINT)
        time.sleep(0.3)
        run.signal(signal.SIGINT)
        run.wait(20)
        try:
            wait_until(lambda: not alive(command), 10, "the command to end with its step")
        finally:
            if alive(command):
                os.kill(command, signal.SIGKILL)
    assert store.steps() == [("long_command", "stopped")]


def alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_ctrl_c_at_random_moments_never_leaves_a_run_running(tmp_path):
    """Twenty-four interruptions, one or two Ctrl-C each, at random moments of a run whose
    steps start and finish all the time, on the local and local_process orchestrators."""
    home, store = project(tmp_path)
    script = caller(tmp_path, "mixed", "seconds=0.15, width=6")
    rng = random.Random(20261129)
    for attempt in range(24):
        flavor = ("local", "local_process")[attempt % 2]
        with Spawned(python(str(script), flavor), env=python_env(home), cwd=tmp_path) as run:
            time.sleep(rng.uniform(0.3, 2.5))
            run.signal(signal.SIGINT)
            if rng.random() < 0.5:
                time.sleep(rng.uniform(0.0, 0.6))
                if run.process.poll() is None:
                    run.signal(signal.SIGINT)
            code, out, err = run.wait(60)
            wait_until(lambda r=run: not r.alive(), 10, "every process it started to end")
        statuses = [status for _, status in store.runs()]
        assert not {"running", "initializing"} & set(statuses), (attempt, statuses, err)
        assert store.running() == 0, (attempt, store.steps("running"), err)
        assert "IntegrityError" not in err and "OperationalError" not in err, (attempt, err)
        last = (err.strip().splitlines() or [""])[-1]
        assert last in ("", "KeyboardInterrupt") or last.startswith("stopping"), (attempt, err)
    assert len(store.runs()) <= 24


def _own_handler(signum, frame):  # a program's own SIGTERM handler
    pass


@step(enable_cache=False)
def one() -> int:
    return 1


@pipeline(enable_cache=False)
def sets_its_own_handler() -> int:
    signal.signal(signal.SIGTERM, _own_handler)
    return one()


SEEN_IN_BODY: list[Any] = []


@pipeline(enable_cache=False)
def handled_by_branchwork() -> Any:
    SEEN_IN_BODY.append(signal.getsignal(signal.SIGTERM))
    return one()


def test_sigterm_is_handed_back_as_it_was_or_as_the_program_set_it():
    """The run's SIGTERM handler is there while the run's loop is, and the default is put
    back after; a handler the program set meanwhile is kept (it was reset to the default)."""
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    try:
        assert handled_by_branchwork() == 1
        assert [handler.__name__ for handler in SEEN_IN_BODY] == ["raise_terminated"]
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        assert sets_its_own_handler() == 1
        assert signal.getsignal(signal.SIGTERM) is _own_handler
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


class _Finishing:
    """A loop whose running steps take time to finish (`close` waits up to 5 s for an
    abandon request), during which the second Ctrl-C arrives inside a finalizer."""

    def __init__(self) -> None:
        self.requests: list[bool] = []

    def request_stop(self, abandon: bool) -> None:
        self.requests.append(abandon)

    def running_steps(self) -> int:
        return 1

    def close(self, cancel: bool = False) -> None:
        if self.requests == [False]:
            holder = _Finishing()
            weakref.finalize(holder, signal.raise_signal, signal.SIGINT)
            del holder  # the finalizer runs here, and the Ctrl-C with it
            deadline = time.monotonic() + 5
            while True not in self.requests and time.monotonic() < deadline:
                time.sleep(0.01)


def test_a_second_ctrl_c_in_a_finalizer_still_abandons_the_running_steps(capsys):
    """A KeyboardInterrupt raised in a finalizer (a weakref callback of SQLAlchemy's) is
    printed as ignored and lost: the second Ctrl-C did nothing, and the run waited for its
    steps. Now it is handled where it arrives."""
    loop = _Finishing()
    previous = signal.getsignal(signal.SIGINT)
    stop_on_interrupt(loop, KeyboardInterrupt())
    assert loop.requests == [False, True]
    assert signal.getsignal(signal.SIGINT) is previous
    assert capsys.readouterr().err.splitlines() == [
        "stopping: 1 step still running — Ctrl-C again to abandon them",
        "abandoning 1 running step: the run is recorded stopped",
    ]


class _Terminated(_Finishing):
    """SIGTERM arrives while the running steps finish after a first Ctrl-C."""

    def close(self, cancel: bool = False) -> None:
        if self.requests == [False]:
            signal.raise_signal(signal.SIGTERM)


def test_sigterm_after_a_first_ctrl_c_abandons_the_running_steps(capsys):
    """Terminated escaped the graceful wait: the steps were not abandoned, nor the run's end
    recorded by its session."""
    loop = _Terminated()
    with sigterm_stops_the_run():
        try:
            stop_on_interrupt(loop, KeyboardInterrupt())
        except Terminated:
            pytest.fail("SIGTERM escaped the wait for the running steps")
    assert loop.requests == [False, True]
    assert capsys.readouterr().err.splitlines()[-1] == (
        "abandoning 1 running step: the run is recorded stopped"
    )


TO_A_WORKER = """
import signal, sys, threading, time
from branchwork import pipeline, step

@step(enable_cache=False)
def slow(i: int) -> int:
    time.sleep(30)
    return i

@pipeline(enable_cache=False)
def waits_in_close():
    return [slow(0), slow(1)]

@pipeline(enable_cache=False)
def waits_for_a_value():
    return slow(int(slow(0)) + 1)  # the body waits for the first value

def interrupter():
    while not any(t.name.startswith("branchwork-step") for t in threading.enumerate()):
        time.sleep(0.05)
    time.sleep(0.5)
    worker = next(t for t in threading.enumerate() if t.name.startswith("branchwork-step"))
    for _ in range(2):  # Ctrl-C, which the kernel may hand to any thread: here a step's
        print("SIGINT", flush=True)
        signal.pthread_kill(worker.ident, signal.SIGINT)
        time.sleep(1)

threading.Thread(target=interrupter, daemon=True).start()
start = time.monotonic()
try:
    globals()[sys.argv[1]]()
except KeyboardInterrupt:
    print(f"KeyboardInterrupt after {time.monotonic() - start:.0f}s", flush=True)
"""


@pytest.mark.parametrize("pipeline_name", ["waits_in_close", "waits_for_a_value"])
def test_ctrl_c_received_by_a_step_thread_stops_and_abandons_at_once(tmp_path, pipeline_name):
    """The main thread blocked in one long wait (for the steps to finish, for a value) saw
    such a Ctrl-C only when the step ended: 30 s here."""
    script = tmp_path / "to_a_worker.py"
    script.write_text(TO_A_WORKER)
    with Spawned(python(str(script), pipeline_name), env=python_env(tmp_path / "home")) as run:
        code, out, err = run.wait(25)
    assert code == 0, err
    first, second, ended = out.splitlines()
    assert (first, second) == ("SIGINT", "SIGINT")
    assert ended.startswith("KeyboardInterrupt after ") and int(ended.split()[-1][:-1]) < 10
    assert "stopping: " in err and "abandoning " in err
