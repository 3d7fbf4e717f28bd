"""The local_process orchestrator: a separate orchestration process, isolated steps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import isolated_pipelines as ip
import pytest
import scale_setting

from branchwork import Client, pipeline, step
from branchwork.exceptions import PipelineRunFailedError
from branchwork.orchestrators import LocalProcessOrchestrator
from branchwork.stack import Stack, active_stack, get_active_stack
from processes import Spawned, wait_until


def local_process(**config):
    return active_stack(
        Stack("lp", LocalProcessOrchestrator(**config), get_active_stack().artifact_store)
    )


def wait_for(path: Path, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return int(path.read_text())


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def run_in_background(pipeline_obj, **params):
    outcome: dict = {}

    def target():
        with local_process():
            try:
                outcome["value"] = pipeline_obj(**params)
            except BaseException as error:  # noqa: BLE001 - inspected by the test
                outcome["error"] = error

    thread = threading.Thread(target=target)
    thread.start()
    return thread, outcome


def test_isolated_steps_run_in_their_own_processes_and_inline_ones_in_the_loop():
    with local_process():
        first, second, inline = ip.pids()
    assert len({first, second, inline, os.getpid()}) == 4
    run = ip.pids.last_run
    assert run.status == "completed" and run.orchestrator == "local_process"


def test_static_runs_share_one_orchestrator_run_id_from_the_environment():
    with local_process():
        assert ip.static_context() == {"invocation": "context_of_step", "attempt": 1}
    run = ip.static_context.last_run
    assert run.orchestrator_run_id == f"local_process-{run.id}"


def test_dynamic_runs_use_the_orchestration_process_identity():
    with local_process():
        result = ip.pids.with_options(dynamic=True)()
    run = ip.pids.last_run
    assert run.snapshot.is_dynamic and len(result) == 3
    host, pid = run.orchestrator_run_id.rsplit("-", 1)
    assert host and int(pid) != os.getpid()


def test_killing_a_step_process_fails_that_step_and_keeps_the_others(tmp_path):
    thread, outcome = run_in_background(ip.one_killed, marker_dir=str(tmp_path))
    os.kill(wait_for(tmp_path / "victim.pid"), signal.SIGKILL)
    thread.join(60)
    error = outcome["error"]
    assert isinstance(error, PipelineRunFailedError)
    assert "wait_to_be_killed" in str(error) and "SIGKILL" in str(error)
    run = Client().get_pipeline_run(error.run_id)
    assert run.status == "failed" and run.failed_step == "wait_to_be_killed"
    assert run.steps["quick"].status == "completed"
    assert run.steps["wait_to_be_killed"].status == "failed"
    assert "killed by SIGKILL" in run.steps["wait_to_be_killed"].exception_message
    # what it printed before it was killed, the line that says where: it was thrown away
    logs = Client().get_step_logs(run.id)
    expected = "é\tß" * 700 + "\nvictim: loaded 3 shards; opening shard 4\n"
    assert logs["wait_to_be_killed"] == expected


def test_killing_the_orchestration_process_leaves_no_orphan_step_processes(tmp_path):
    thread, outcome = run_in_background(ip.sleepers, marker_dir=str(tmp_path))
    steps = [wait_for(tmp_path / f"s{i}.pid") for i in range(2)]
    zygote = parent_of(steps[0])
    runner = parent_of(zygote)
    assert runner != os.getpid()
    os.kill(runner, signal.SIGKILL)
    thread.join(60)
    deadline = time.monotonic() + 10
    while not all(gone(pid) for pid in [*steps, zygote]):
        assert time.monotonic() < deadline, "step processes outlived the orchestration process"
        time.sleep(0.05)
    error = outcome["error"]
    run = Client().get_pipeline_run(error.run_id)
    assert run.status == "failed"
    assert "before the run finished" in run.exception_message
    # Nothing raised it in the pipeline body: no traceback (`runs show` gave one as the
    # body's), and the error does not say the pipeline function raised.
    assert f"run '{run.name}' failed: OrchestratorError: The orchestration" in str(error)
    assert run.traceback is None
    # Its attempts in flight are closed as lost: they stayed `running` for good.
    assert [step.status for step in run.steps.values()] == ["failed", "failed"]
    assert {step.exception_type for step in run.steps.values()} == {"OrchestrationLost"}


def test_sigterm_stops_the_run_and_ends_its_step_processes(tmp_path):
    thread, outcome = run_in_background(ip.sleepers, marker_dir=str(tmp_path))
    steps = [wait_for(tmp_path / f"s{i}.pid") for i in range(2)]
    runner = parent_of(parent_of(steps[0]))
    os.kill(runner, signal.SIGTERM)
    thread.join(60)
    assert all(gone(pid) for pid in steps)
    run = Client().get_pipeline_run(outcome["error"].run_id)
    assert run.status == "stopped"
    assert (run.exception_type, run.exception_message) == ("Terminated", "stopped by SIGTERM")
    assert [s.status for s in run.steps.values()] == ["stopped", "stopped"]


def test_ctrl_c_as_the_orchestration_process_is_launched_stops_the_run_and_it_quietly(capfd):
    """The process finds its run stopped before it got to it: it leaves the run as it is
    and exits 130 without a word (it used to say the run 'has already started')."""
    stack = Stack("lp", ip.CtrlCJustAfterLaunch(), get_active_stack().artifact_store)
    with active_stack(stack), pytest.raises(KeyboardInterrupt):
        ip.pids()
    assert ip.LAUNCHED.pop().wait_for_completion() == 130
    assert capfd.readouterr().err == ""
    run = Client().get_pipeline_run("latest")
    assert run.status == "stopped"
    assert run.exception_message == "Stopped by Ctrl-C before its loop ran."
    assert run.start_time is None and run.steps == {}


def test_a_pipeline_that_cannot_be_loaded_there_fails_clearly():
    @step
    def local_step() -> int:
        return 1

    @pipeline
    def defined_in_a_function():
        return local_step()

    with local_process(), pytest.raises(PipelineRunFailedError) as info:
        defined_in_a_function()
    run = Client().get_pipeline_run(info.value.run_id)
    assert run.status == "failed"
    assert "Cannot load pipeline 'defined_in_a_function'" in run.exception_message
    assert "module level" in run.exception_message


def test_a_pipeline_in_a_script_run_as_main_loads_in_the_orchestration_process(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(
        "import os\n"
        "from branchwork import pipeline, step\n"
        "from branchwork.orchestrators import LocalProcessOrchestrator\n"
        "from branchwork.stack import Stack, active_stack, get_active_stack\n"
        "@step\ndef pid() -> int:\n    return os.getpid()\n"
        "@pipeline\ndef script_pipeline():\n    return pid()\n"
        "if __name__ == '__main__':\n"
        "    stack = Stack('lp', LocalProcessOrchestrator(), get_active_stack().artifact_store)\n"
        "    with active_stack(stack):\n"
        "        print(script_pipeline() != os.getpid())\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


ARGUMENTS = """
import argparse, os
from branchwork import pipeline, step
from branchwork.orchestrators import LocalProcessOrchestrator
from branchwork.stack import Stack, active_stack, get_active_stack

parser = argparse.ArgumentParser()
parser.add_argument("n", type=int)
parser.add_argument("--lr", type=float, default=0.1)
ARGS = parser.parse_args()

@step(runtime="isolated")
def train(x: int) -> float:
    if os.path.exists("down"):
        raise ConnectionError("the service is down")
    return x * ARGS.lr

@pipeline
def tuned():
    return [train(i) for i in range(ARGS.n)]

if __name__ == "__main__":
    stack = Stack("lp", LocalProcessOrchestrator(), get_active_stack().artifact_store)
    with active_stack(stack):
        print(tuned())
"""


def test_a_script_that_parses_its_arguments_at_import_gets_them_again_there(tmp_path):
    """The orchestration process (and a resume) imports the script again: it parsed that
    process's own arguments, so `--lr 0.5` silently ran with 0.1, and a required argument
    failed the run ("usage: pipeline_runner.py [-h] n") and every resume of it."""
    script = tmp_path / "tuned.py"
    script.write_text(ARGUMENTS)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=tmp_path)

    done = run(sys.executable, str(script), "2", "--lr", "0.5")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "[0.0, 0.5]"
    (tmp_path / "down").touch()
    failed = run(sys.executable, str(script), "3", "--lr", "0.25")
    assert "the service is down" in failed.stderr
    (tmp_path / "down").unlink()
    branchwork = [sys.executable, "-m", "branchwork.cli"]
    resumed = run(*branchwork, "runs", "resume", "latest")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.splitlines()[-1] == "Result: [0.0, 0.25, 0.5]"
    # `branchwork run` passes parameters with -p, not arguments: the script's defaults
    cli = run(*branchwork, "run", f"{script}:tuned", "--no-progress")
    assert "the following arguments are required: n" in cli.stderr
    assert "run" not in cli.stderr.split("error:")[-1]  # not the command's own arguments


NESTED = """
import argparse
from branchwork import pipeline, step
from branchwork.orchestrators import LocalProcessOrchestrator
from branchwork.stack import Stack, active_stack, get_active_stack

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, required=True)
ARGS = parser.parse_args()

@step
def scaled(x: int) -> float:
    return x * ARGS.lr

@pipeline
def inner():
    return scaled(2)

@pipeline
def outer():
    return inner()

if __name__ == "__main__":
    stack = Stack("lp", LocalProcessOrchestrator(), get_active_stack().artifact_store)
    with active_stack(stack):
        print(outer())
"""


def test_a_child_run_records_its_parents_arguments_and_a_script_that_exits_says_so(tmp_path):
    """A child run is created in a step's process (on local_process the orchestration
    process, whose own arguments are the runner's; on Ray a worker's, which are Ray's): it
    recorded those, and its resume or replay imported the script with them."""
    from branchwork.exceptions import PipelineDefinitionError
    from branchwork.user_code import load_source

    script = tmp_path / "nested.py"
    script.write_text(NESTED)
    done = subprocess.run(
        [sys.executable, str(script), "--lr", "0.5"], capture_output=True, text=True, timeout=120
    )
    assert (done.returncode, done.stdout.strip()) == (0, "1.0"), done.stderr
    runs = {run.pipeline_name: run for run in Client().list_pipeline_runs()}
    assert set(runs) == {"outer", "inner"}
    argv = {name: Client().get_pipeline_run(run.id).snapshot.argv for name, run in runs.items()}
    assert argv == {"outer": ("--lr", "0.5"), "inner": ("--lr", "0.5")}
    # imported with arguments it refuses (a run recorded before arguments were): an error
    # that says so, not the end of the importing process
    with pytest.raises(PipelineDefinitionError) as refused:
        load_source("outer", "__main__:outer", str(script), [], ())
    assert (
        f"Importing {script} with the arguments its run was started with (none) exited it: "
        "SystemExit: 2." in str(refused.value)
    )


EDITED = """
import os, pathlib, time
from branchwork import pipeline, step
from branchwork.orchestrators import LocalProcessOrchestrator
from branchwork.stack import Stack, active_stack, get_active_stack

@step(runtime="isolated")
def first() -> int:
    pathlib.Path("started").touch()
    deadline = time.monotonic() + 60
    while not os.path.exists("go") and time.monotonic() < deadline:
        time.sleep(0.02)
    return 1

@step(runtime="isolated")
def second(x: int) -> int:
    import helper
    return helper.f(x)

@pipeline
def edited():
    return second(first())

if __name__ == "__main__":
    stack = Stack("lp", LocalProcessOrchestrator(), get_active_stack().artifact_store)
    with active_stack(stack):
        print(edited(), [str(s.cache_verdict) for s in edited.last_run.steps.values()])
"""


def test_a_script_step_run_with_a_helper_edited_after_it_was_keyed_is_not_cached(tmp_path):
    """The helper it imports changed while the run went on: the step process saw other code
    than its key says. A module's step said so and was not cached; a script's was cached
    under the key of the old code, and the next run, the helper reverted, got its result."""
    (tmp_path / "edited.py").write_text(EDITED)
    helper = tmp_path / "helper.py"
    helper.write_text("def f(x):\n    return x + 1\n")
    command = [sys.executable, "edited.py"]
    with Spawned(command, env=dict(os.environ), cwd=tmp_path) as run:
        wait_until(lambda: (tmp_path / "started").exists(), 60, "the first step to start")
        helper.write_text("def f(x):\n    return x + 100\n")
        (tmp_path / "go").touch()
        code, out, err = run.wait(120)
    assert (code, out.strip()) == (0, "101 ['miss', 'miss']"), err
    assert "Step 'second' ran in a process that sees other code or values" in err
    helper.write_text("def f(x):\n    return x + 1\n")
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert again.stdout.strip() == "2 ['hit', 'miss']", again.stderr


FAILING_SCRIPT = """
from branchwork import pipeline, step
from branchwork.orchestrators import LocalProcessOrchestrator
from branchwork.stack import Stack, active_stack, get_active_stack

def check(x):
    if x > 1:
        raise ValueError(f"bad value {x}")
    return x

@step(runtime="isolated")
def work(x: int) -> int:
    return check(x) + (lambda y: y)(1)

@pipeline
def checked(x: int = 2):
    return work(x)

if __name__ == "__main__":
    stack = Stack("lp", LocalProcessOrchestrator(), get_active_stack().artifact_store)
    with active_stack(stack):
        try:
            checked()
        except Exception:
            print(checked.last_run.steps["work"].traceback)
"""


def test_the_traceback_of_a_script_step_names_the_script_and_its_lines(tmp_path):
    """The step travels by value (cloudpickle), which names its code `<dynamic-code>`: the
    traceback said `File "<dynamic-code>", line 8, in check` with no line of code."""
    script = tmp_path / "checked.py"
    script.write_text(FAILING_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "<dynamic-code>" not in done.stdout
    assert done.stdout.strip().splitlines()[-6:] == [
        f'  File "{script}", line 13, in work',
        "    return check(x) + (lambda y: y)(1)",
        "           ^^^^^^^^",
        f'  File "{script}", line 8, in check',
        '    raise ValueError(f"bad value {x}")',
        "ValueError: bad value 2",
    ]


POOLED = """
import multiprocessing
from branchwork import pipeline, step
from branchwork.orchestrators import LocalProcessOrchestrator
from branchwork.stack import Stack, active_stack, get_active_stack

def square(x):
    print("squaring", x)  # in a process the step forked: not the step's own (its log's)
    return x * x

@step(runtime="isolated")
def crunch(n: int) -> int:
    with multiprocessing.get_context("fork").Pool(2) as pool:
        return sum(pool.map(square, range(n)))

@pipeline
def pooled(n: int = 10):
    return crunch(n)

if __name__ == "__main__":
    stack = Stack("lp", LocalProcessOrchestrator(), get_active_stack().artifact_store)
    with active_stack(stack):
        print(pooled())
"""


def test_an_isolated_script_step_hands_its_functions_to_a_multiprocessing_pool(tmp_path):
    """The pool pickles `square` by reference to the script's module, which the step's
    process had not: "Can't pickle <function square>: import of module
    '__branchwork_main__' failed"."""
    script = tmp_path / "pooled.py"
    script.write_text(POOLED)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "285"


SWEEP = """
import sys
from branchwork import pipeline, step
from branchwork.orchestrators import LocalProcessOrchestrator
from branchwork.stack import Stack, active_stack, get_active_stack

FACTOR = 1

@step
def times(x: int) -> int:
    return x * FACTOR

@pipeline
def sweep():
    return times(1)

if __name__ == "__main__":
    stack = Stack("lp", LocalProcessOrchestrator(), get_active_stack().artifact_store)
    with active_stack(stack):
        for factor in map(int, sys.argv[1:]):
            FACTOR = factor
            print(sweep())
"""


def test_a_global_the_script_sets_before_a_run_is_not_seen_there_and_it_says_so(tmp_path):
    """The orchestration process imports the script afresh: a sweep setting a global runs
    with the module's own value (on `local` it would not), and a warning names the global."""
    script = tmp_path / "sweep.py"
    script.write_text(SWEEP)
    done = subprocess.run(
        [sys.executable, str(script), "1", "3"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "1"]
    warning = (
        "Pipeline 'sweep' runs in an orchestration process of its own, which imports its code "
        "afresh and sees other code or values there than the process that started the run: "
        "__main__:FACTOR (a global set at run time is not seen there). The run uses the values "
        "its modules define: pass such a value as a pipeline parameter."
    )
    assert done.stderr.count(warning) == 1  # the second run only: FACTOR = 1 is the module's
    assert "other code or values" not in done.stderr.replace(warning, "")


SEEDED = """
import random
from branchwork import pipeline, step
from branchwork.orchestrators import LocalProcessOrchestrator
from branchwork.stack import Stack, active_stack, get_active_stack

@step
def train(seed: int) -> int:
    return seed

@pipeline
def seeded():
    return train(random.Random().randint(0, 10**9))

if __name__ == "__main__":
    with active_stack(Stack("lp", LocalProcessOrchestrator(), get_active_stack().artifact_store)):
        seeded()
"""


def test_a_static_body_that_builds_another_graph_where_its_loop_runs_fails_the_run(tmp_path):
    """The body runs where the run is started (the snapshot's graph) and again in the
    orchestration process: a random seed there made the store record an input other than
    the one the step got."""
    script = tmp_path / "seeded.py"
    script.write_text(SEEDED)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert (
        "failed: the pipeline function raised PipelineDefinitionError: Pipeline 'seeded' is "
        in last
    )
    assert (
        "static, and its body built another graph where its loop runs than where the run " in last
    )
    assert "was started: invocation 'train': inputs {'seed': " in last
    assert last.endswith(
        "A static body runs in both places: make what varies (a random seed, the clock, a "
        "global set at run time) a parameter or a step, or make the pipeline dynamic "
        "(@pipeline(dynamic=True))."
    )
    run = Client().get_pipeline_run("latest")
    assert (run.status, run.steps) == ("failed", {})  # no step ran on a graph it does not record


SCRIPT_CLASSES = """
from __future__ import annotations
import sys
from dataclasses import dataclass
from pydantic import BaseModel
from branchwork import pipeline, step
from branchwork.orchestrators import LocalProcessOrchestrator
from branchwork.stack import Stack, active_stack, get_active_stack

@dataclass
class Point:
    x: int
    y: int

class Scale(BaseModel):
    factor: int

@step(runtime="isolated")
def make(i: int) -> Point:
    return Point(i, i + 1)

@step(runtime="isolated")
def scale(factor: int) -> Scale:
    return Scale(factor=factor)

@step(runtime="isolated")
def total(points: list[Point], scale: Scale | None) -> int:
    return sum(p.x + p.y for p in points) * scale.factor

@step(runtime="isolated")
def untyped(point) -> int:
    return point.x

@pipeline
def script_classes(untyped_too: bool):
    points = [make(i) for i in range(3)]
    return untyped(points[0]) if untyped_too else total(points, scale(10))

if __name__ == "__main__":
    stack = Stack("lp", LocalProcessOrchestrator(), get_active_stack().artifact_store)
    with active_stack(stack):
        print(script_classes(untyped_too=len(sys.argv) > 1))
"""


def test_isolated_steps_load_inputs_of_the_script_s_own_classes(tmp_path):
    """A step process cannot import the script: the step brings the classes its parameters
    are annotated with. Unannotated, the step fails saying what to do, with its own error."""
    script = tmp_path / "script.py"
    script.write_text(SCRIPT_CLASSES)
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "90"  # (1 + 3 + 5) * 10

    done = subprocess.run(
        [sys.executable, str(script), "untyped"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("branchwork.exceptions.PipelineRunFailedError: Pipeline ")
    assert last.endswith(
        "failed: step 'untyped' raised MissingClassError: An input holds a dataclass of class "
        "Point, defined in the script that ran the pipeline, as JSON, and the class is not "
        "found in this process (a step that runs in a process of its own, isolated or on Ray, "
        "cannot import the script): annotate the step's parameter with Point (a step brings "
        "the classes its annotations name), or define Point in a module the script imports."
    )
    # rebuilt as itself in the caller, not as a RemoteStepError saying it could not be
    assert "MissingClassError: An input holds" in done.stderr
    assert "not rebuilt here" not in done.stderr


def run_in_a_step_process(step, inputs, artifacts):
    """The result of `step` run by `step_runner` in a process of its own, as an isolated
    step is."""
    from branchwork.artifact_stores import LocalArtifactStore
    from branchwork.runtime.envelopes import request_to_json, result_from_json
    from branchwork.runtime.step_execution import StepRequest

    request = StepRequest(
        run_id="r",
        run_name="run",
        pipeline_name="p",
        invocation_id=f"{step.name}_2",
        step_run_id="s",
        attempt=1,
        step=step,
        inputs=inputs,
        artifact_store=LocalArtifactStore(artifacts),
    )
    envelope = request_to_json(request)
    assert json.loads(envelope)["version"] == 8
    done = subprocess.run(
        [sys.executable, "-m", "branchwork.orchestrators.step_runner"],
        input=envelope,
        capture_output=True,
        text=True,
        cwd=Path(ip.__file__).parent,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return result_from_json(done.stdout)


def test_step_runner_runs_one_request_envelope(tmp_path):
    result = run_in_a_step_process(ip.quick, {"x": 41}, tmp_path / "artifacts")
    assert result.ok and result.invocation_id == "quick_2"
    from branchwork.materializers.io import load_artifact

    output = result.outputs["output"]  # small: kept inline, its data in the result
    assert output.uri.startswith("inline://") and output.inline == b"data.json\x0042"
    assert load_artifact(output.uri, output.materializer, inline=output.inline) == 42


def test_a_step_process_says_which_module_values_differ_from_where_it_was_keyed(
    tmp_path, monkeypatch
):
    """A global set at run time where the key is made is not what a step process imports:
    the result says so, and the loop does not let it serve that key (test_ray)."""
    from branchwork.runtime.envelopes import code_differences
    from branchwork.user_code import new_code_generation

    assert run_in_a_step_process(ip.scaled, {"x": 2.0}, tmp_path / "a").code_seen is None
    decorated = run_in_a_step_process(ip.decorated, {"x": 2.0}, tmp_path / "d")
    assert (output_value(decorated), decorated.code_seen) == (2.0, None)
    monkeypatch.setattr(scale_setting, "SCALE", 3.0)
    new_code_generation()  # as a run started now would
    result = run_in_a_step_process(ip.scaled, {"x": 2.0}, tmp_path / "b")
    assert result.ok and code_differences(ip.scaled, result.code_seen) == ("scale_setting:SCALE",)
    assert output_value(result) == 2.0  # computed with what the step process imports


def test_a_helper_reading_the_step_s_own_module_global_is_seen_to_differ(tmp_path, monkeypatch):
    """The step travels pickled with the module's globals it reads (OFFSET = 5), its helper
    is imported afresh with the module (OFFSET = 0): the step process compares the module
    as it imports it."""
    from branchwork.runtime.envelopes import code_differences
    from branchwork.user_code import new_code_generation

    monkeypatch.setattr(ip, "OFFSET", 5)
    new_code_generation()
    result = run_in_a_step_process(ip.offset, {"x": 1.0}, tmp_path / "a")
    assert output_value(result) == [6.0, 1.0]
    assert code_differences(ip.offset, result.code_seen) == ("isolated_pipelines:OFFSET",)


def output_value(result):
    from branchwork.materializers.io import load_artifact

    output = result.outputs["output"]
    return load_artifact(output.uri, output.materializer, inline=output.inline)


RESUMED = """
from pathlib import Path
import scale_setting
from branchwork import Client, pipeline, step
from branchwork.orchestrators import LocalProcessOrchestrator
from branchwork.stack import Stack, active_stack, get_active_stack

scale_setting.SCALE = 3.0  # here and in the orchestration process, not in step processes
MARKER = Path(__file__).with_name("marker")

from isolated_pipelines import scaled  # a module's step: a step process imports it afresh

@step
def checked(x: float) -> float:
    if not MARKER.exists():
        raise RuntimeError("not yet")
    return x + 1

@pipeline
def resumed_after_an_uncached_step():
    return checked(scaled(2.0))

if __name__ == "__main__":
    with active_stack(Stack("lp", LocalProcessOrchestrator(), get_active_stack().artifact_store)):
        try:
            resumed_after_an_uncached_step()
        except Exception:
            MARKER.write_text("now")
            print(Client().resume_run("latest"))
"""


def test_a_run_whose_step_was_not_cached_resumes(tmp_path):
    """Its result is recorded invalidated: the resume runs it again, and the step after it,
    whose input came from it, runs again rather than diverging."""
    script = tmp_path / "resumed.py"
    script.write_text(RESUMED)
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(scale_setting.__file__).parent)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3.0"]
    run = Client().get_pipeline_run("latest")
    assert run.status == "completed"
    assert [(s.status, s.attempt) for s in run.steps.values()] == [("completed", 2)] * 2


CALLER = """
import sys
sys.path.insert(0, {here!r})
import isolated_pipelines as ip
from branchwork.orchestrators import LocalProcessOrchestrator
from branchwork.stack import Stack, active_stack, get_active_stack
stack = Stack("lp", LocalProcessOrchestrator(), get_active_stack().artifact_store)
with active_stack(stack):
    ip.sleepers(marker_dir={folder!r})
"""


def test_two_ctrl_c_in_the_caller_stop_the_run_and_its_step_processes(tmp_path):
    script = tmp_path / "caller.py"
    script.write_text(CALLER.format(here=str(Path(ip.__file__).parent), folder=str(tmp_path)))
    caller = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE, text=True)
    try:
        steps = [wait_for(tmp_path / f"s{i}.pid") for i in range(2)]
        caller.send_signal(signal.SIGINT)  # the first asks for a graceful stop
        time.sleep(0.5)
        assert not any(gone(pid) for pid in steps)
        caller.send_signal(signal.SIGINT)  # the second abandons the running steps
        _, err = caller.communicate(timeout=60)
    finally:
        caller.kill()
    assert caller.returncode != 0 and "KeyboardInterrupt" in err
    assert "stopping: 2 steps still running — Ctrl-C again to abandon them" in err
    deadline = time.monotonic() + 10
    while not all(gone(pid) for pid in steps):
        assert time.monotonic() < deadline, "step processes outlived Ctrl-C"
        time.sleep(0.05)
    run = Client().list_pipeline_runs(pipeline="sleepers")[0]
    assert run.status == "stopped"
    assert [step.status for step in run.steps.values()] == ["stopped", "stopped"]


def test_sigterm_to_the_caller_stops_the_run_and_ends_its_orchestration(tmp_path):
    """`timeout`, a CI cancel or `docker stop` send SIGTERM: it killed the caller alone, and
    the run went on in the background to completion."""
    script = tmp_path / "caller.py"
    script.write_text(CALLER.format(here=str(Path(ip.__file__).parent), folder=str(tmp_path)))
    with Spawned([sys.executable, str(script)], env=dict(os.environ)) as caller:
        steps = [wait_for(tmp_path / f"s{i}.pid") for i in range(2)]
        runner = parent_of(parent_of(steps[0]))
        caller.signal(signal.SIGTERM)
        code, _, err = caller.wait(60)
        wait_until(lambda: gone(runner) and all(map(gone, steps)), 10, "the run's processes")
    assert code != 0 and "Terminated: stopped by SIGTERM" in err
    run = Client().list_pipeline_runs(pipeline="sleepers")[0]
    assert run.status == "stopped"
    assert [step.status for step in run.steps.values()] == ["stopped", "stopped"]


def test_a_runner_launched_again_for_a_run_leaves_it_as_it_is():
    """What a backend that launches a job twice does: the second runner exits 2."""
    ip.pids()
    run = Client().get_pipeline_run("latest")
    done = subprocess.run(
        [sys.executable, "-m", "branchwork.orchestrators.pipeline_runner", "--run-id", run.id],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"branchwork pipeline_runner: Run '{run.name}' has already started (status completed).\n"
    )
    assert Client().get_pipeline_run(run.id).status == "completed"


def test_an_isolated_step_that_cannot_be_sent_fails_alone_and_the_loop_goes_on():
    """A global it reads holds a lock (it does not pickle): the loop crashed and the step
    stayed `running` in a failed run."""
    with local_process(), pytest.raises(PipelineRunFailedError) as info:
        ip.unsendable()
    assert str(info.value).endswith(
        "step 'guarded' raised StepFailedError: Step 'guarded' could not be sent to run: "
        "TypeError: cannot pickle '_thread.lock' object"
    )
    steps = ip.unsendable.last_run.steps
    assert {name: str(s.status) for name, s in steps.items()} == {
        "one": "completed",
        "guarded": "failed",
    }
