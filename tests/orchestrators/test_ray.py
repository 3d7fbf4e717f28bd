"""The Ray orchestrator on a real local Ray cluster of 2 CPUs: where steps run, how many at
once, refusing what no node can run, a 200-step fan-out, the loop as a Ray task, retries,
dying workers and cancellation. The pipelines live at module level: with `loop="cluster"`
the orchestration task imports them again by their recorded source."""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timezone
from pathlib import Path
from typing import Any

import pytest
import scale_setting

from branchwork import Client, get_step_context, pipeline, step
from branchwork.artifact_stores import LocalArtifactStore
from branchwork.config import ResourceSettings, StepRetryConfig
from branchwork.exceptions import ConfigurationError, PipelineRunFailedError
from branchwork.stack import Stack, active_stack, get_active_stack

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'branchwork[ray]')")

from branchwork.orchestrators.ray import RayOrchestrator  # noqa: E402
from branchwork.orchestrators.ray_cluster import ClusterResources  # noqa: E402
from branchwork.orchestrators.ray_launcher import RayLauncher  # noqa: E402
from branchwork.runtime.step_execution import StepRequest, StepResult  # noqa: E402

pytestmark = pytest.mark.xdist_group("ray")


@pytest.fixture(scope="module", autouse=True)
def ray_cluster(request: pytest.FixtureRequest) -> None:
    """A real local cluster of 2 CPUs, started once per test process (it takes ~10 s here)
    and shared by the Ray test modules; stopped when the session ends."""
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        request.config.add_cleanup(ray.shutdown)


def on_ray(**config: Any) -> Any:
    return active_stack(Stack("ray", RayOrchestrator(**config), get_active_stack().artifact_store))


def wait_for_file(path: Path, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return path.read_text()


# ---- steps and pipelines --------------------------------------------------------------------


@step
def where() -> int:
    return os.getpid()


@step(runtime="inline")
def where_inline() -> int:
    return os.getpid()


@step
def scaled(x: float) -> float:
    return x * scale_setting.SCALE  # another module's value: a worker imports it afresh


@step
def own_scaled(x: float) -> float:
    return x * OWN_SCALE  # its own module's value: travels with its pickle


OWN_SCALE = 1.0


@pipeline
def scaling(x: float) -> float:
    return scaled(x)


@pipeline
def own_scaling(x: float) -> float:
    return own_scaled(x)


@step
def echo(value: int) -> int:
    return value


@step
def emit(n: int) -> int:
    return n


@step
def square(i: int) -> int:
    return i * i


@step
def total(values: list[int]) -> int:
    return sum(values)


def meet(marker_dir: str, index: int, parties: int) -> None:
    """Returns only once `parties` steps have started: proves they run at the same time."""
    Path(marker_dir, f"{index}.started").touch()
    deadline = time.monotonic() + 60
    while len(list(Path(marker_dir).glob("*.started"))) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {parties} steps ever ran at the same time")
        time.sleep(0.02)


@step
def rendezvous(marker_dir: str, index: int, parties: int) -> int:
    meet(marker_dir, index, parties)
    return os.getpid()


@step(settings={"resources": ResourceSettings(cpu_count=1)})
def hold_a_cpu(marker_dir: str, index: int) -> list[float]:
    """Waits for a second one to start (two CPUs: two at once), then holds its CPU."""
    meet(marker_dir, index, 2)
    start = time.time()
    time.sleep(0.5)
    return [start, time.time()]


@step
def nap(index: int) -> list[float]:
    start = time.time()
    time.sleep(0.4)
    return [start, time.time()]


@step(settings={"resources": ResourceSettings(gpu_count=1)})
def train_on_gpu(x: int) -> int:
    return x


@step
def orchestrator_run_id_seen_by_step() -> str:
    return os.environ.get("BRANCHWORK_ORCHESTRATOR_RUN_ID", "")


@step(retry=StepRetryConfig(max_retries=2))
def flaky(log_path: str) -> int:
    with open(log_path, "a") as log:
        log.write(f"{get_step_context().attempt}\n")
    attempts = len(Path(log_path).read_text().splitlines())
    if attempts < 3:
        raise RuntimeError(f"attempt {attempts} fails on purpose")
    return attempts


@step
def die(log_path: str) -> int:
    with open(log_path, "a") as log:
        log.write("ran\n")
    os.kill(os.getpid(), signal.SIGKILL)
    return 0


@step
def sleep_until_killed(marker_dir: str) -> int:
    Path(marker_dir, "sleeper.pid").write_text(str(os.getpid()))
    time.sleep(60)
    return 0


@step
def chatty(i: int) -> int:
    print(f"out {i}")
    print(f"err {i}", file=sys.stderr)
    logging.getLogger("chatty").warning("log %d", i)
    return i


@pipeline(enable_cache=False)
def two_chatty():
    return [chatty(0), chatty(1)]


@pipeline(enable_cache=False)
def pids():
    return [where(), where(), where_inline()]


@pipeline(enable_cache=False)
def eight_at_once(marker_dir: str):
    return [rendezvous(marker_dir, i, 8) for i in range(8)]


@pipeline(enable_cache=False)
def four_cpu_bound(marker_dir: str):
    return [hold_a_cpu(marker_dir, i) for i in range(4)]


@pipeline(enable_cache=False)
def sixteen_naps():
    return [nap(i) for i in range(16)]


@pipeline(enable_cache=False)
def static_gpu():
    return train_on_gpu(echo(1))


@pipeline(dynamic=True, enable_cache=False)
def dynamic_gpu(n: int):
    count = emit(n)
    return [train_on_gpu(i) for i in range(count)]


@pipeline(enable_cache=False)
def fan_out(n: int):
    count = emit(n)
    return total([square(i) for i in range(int(count))])


@pipeline(dynamic=True, enable_cache=False)
def loop_identity(n: int):
    # The body runs in the orchestration process; its pid travels as a plain parameter.
    loop_pid = echo(os.getpid())
    return [loop_pid, *[square(i) for i in range(emit(n))]]


@pipeline(enable_cache=False)
def static_run_id():
    return orchestrator_run_id_seen_by_step()


@pipeline(enable_cache=False)
def retried(log_path: str):
    return flaky(log_path)


@pipeline(enable_cache=False)
def dying(log_path: str):
    return die(log_path)


@step
def task_of(i: int) -> str:
    """The Ray task that ran this step."""
    return ray.get_runtime_context().get_task_id()


@step
def slow_task_of(i: int) -> str:
    time.sleep(0.02)  # longer than a quick step: never batched
    return ray.get_runtime_context().get_task_id()


@step
def task_or_fails(i: int) -> str:
    if i == 100:
        raise ValueError("item 100 is bad")
    return ray.get_runtime_context().get_task_id()


@step(retry=StepRetryConfig(max_retries=1, delay=0))
def dies_in_a_batch(i: int, folder: str) -> str:
    """The first step to run after another step in the same Ray task (a batch) kills its
    worker, once: the step before it ran, and its result dies with the task."""
    task = ray.get_runtime_context().get_task_id()
    ran = Path(folder, task)
    if ran.exists():
        try:
            os.close(os.open(Path(folder, "died"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            pass
        else:
            Path(folder, "died").write_text(str(i))
            os._exit(1)
    ran.write_text(str(i))
    return task


@pipeline(enable_cache=False)
def quick_fan_out(n: int):
    return [task_of(i) for i in range(n)]


@pipeline(enable_cache=False)
def slow_fan_out(n: int):
    return [slow_task_of(i) for i in range(n)]


@pipeline(enable_cache=False, failure_mode="continue_on_failure")
def one_bad_item(n: int):
    return [task_or_fails(i) for i in range(n)]


@pipeline(enable_cache=False)
def one_dying_item(n: int, folder: str):
    return [dies_in_a_batch(i, folder) for i in range(n)]


# ---- where and how many --------------------------------------------------------------------


def test_importing_the_orchestrator_does_not_import_ray():
    code = "import sys, branchwork.orchestrators.ray; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_steps_run_in_ray_worker_processes_and_inline_ones_in_the_loop():
    with on_ray():
        first, second, inline = pids()
    assert os.getpid() not in (first, second)
    assert inline == os.getpid()
    run = pids.last_run
    assert run.status == "completed" and run.orchestrator == "ray"


def test_a_result_computed_where_a_global_differs_from_the_driver_is_not_cached(
    monkeypatch, caplog
):
    """The key is made in the driver, with SCALE = 3; a worker imports the module afresh and
    computes with 1.0. Stored under the key of 3.0, it would be served to any later run that
    asks for 3.0, on any orchestrator: it keeps no key, and the run says why."""
    with on_ray():
        assert scaling(x=2.0) == 2.0
        monkeypatch.setattr(scale_setting, "SCALE", 3.0)
        with caplog.at_level(logging.WARNING, logger="branchwork"):
            assert scaling(x=2.0) == 2.0  # what the worker computed
            again = scaling(x=2.0)
    assert again == 2.0
    warnings = [r.getMessage() for r in caplog.records if "other code or" in r.getMessage()]
    assert (
        warnings
        == [
            "Step 'scaled' ran in a process that sees other code or values than where its cache "
            "key was made: scale_setting:SCALE (a step process imports modules afresh: a global "
            "set at run time is not seen there). Its results are not cached: pass such a value as "
            "a step argument."
        ]
        * 2
    )  # once per run
    (run,) = Client().get_pipeline_run(scaling.last_run.id).steps.values()
    assert run.status == "completed"  # ran again: the run before left nothing to serve
    assert "whose result was invalidated" in run.cache_reason  # recorded as such
    assert run.cache_reason.endswith(
        "; not cached: where it ran, other code or values than where its key was made: "
        "scale_setting:SCALE"
    )


def test_a_global_of_the_step_s_own_module_set_in_the_driver_is_not_cached_either(
    monkeypatch, caplog
):
    """The step travels pickled with the value it reads (3.0 here), but the module a worker
    imports, which its helpers would read, holds 1.0: it is not cached, and says so."""
    with on_ray():
        assert own_scaling(x=2.0) == 2.0
        monkeypatch.setattr(sys.modules[__name__], "OWN_SCALE", 3.0)
        with caplog.at_level(logging.WARNING, logger="branchwork"):
            assert own_scaling(x=2.0) == 6.0
            assert own_scaling(x=2.0) == 6.0
    named = [r.getMessage() for r in caplog.records if "other code or values" in r.getMessage()]
    assert len(named) == 2 and all(f": {__name__}:OWN_SCALE (" in message for message in named)
    (run,) = own_scaling.last_run.steps.values()
    assert run.status == "completed"


def test_eight_plain_steps_run_at_the_same_time_on_two_cpus(tmp_path):
    with on_ray():
        step_pids = eight_at_once(str(tmp_path))
    assert len(set(step_pids)) == 8


def test_cpu_bound_steps_hold_a_whole_cpu_each(tmp_path):
    with on_ray():
        intervals = four_cpu_bound(str(tmp_path))
    most_at_once = max(
        sum(1 for start, end in intervals if start <= moment < end) for moment, _ in intervals
    )
    assert most_at_once == 2


def test_a_step_that_waited_in_rays_queue_is_recorded_from_when_it_began():
    """Sixteen plain steps are launched at once and Ray runs eight at a time: each step's
    recorded start is when it began, not when it was launched, so the wait of the second
    eight for a CPU is not part of their durations."""
    with on_ray():
        intervals = sixteen_naps()
    steps = sixteen_naps.last_run.steps
    for index, (began, _) in enumerate(intervals):
        step_run = steps["nap" if index == 0 else f"nap_{index + 1}"]
        recorded = step_run.start_time.replace(tzinfo=timezone.utc).timestamp()
        assert 0 <= began - recorded < 0.2, (index, began - recorded)


def test_step_logs_are_captured_in_the_worker_and_recorded_by_the_loop():
    with on_ray():
        assert two_chatty() == [0, 1]
    logs = Client().get_step_logs(two_chatty.last_run.id)
    for i, name in enumerate(["chatty", "chatty_2"]):
        assert set(logs[name].splitlines()) == {f"out {i}", f"err {i}", f"WARNING chatty: log {i}"}


# ---- refusing what no node can run ---------------------------------------------------------


@pytest.mark.parametrize("loop", ["driver", "cluster"])
def test_a_static_run_with_a_gpu_step_on_a_cpu_cluster_fails_before_anything_runs(loop):
    started = time.monotonic()
    with on_ray(loop=loop), pytest.raises(PipelineRunFailedError) as info:
        static_gpu()
    assert time.monotonic() - started < 30
    message = str(info.value)
    assert "train_on_gpu" in message and "gpu_count=1" in message
    assert "no node of the Ray cluster" in message and "GPU=0" in message
    run = Client().get_pipeline_run(info.value.run_id)
    assert run.status == "failed" and run.failed_step == "train_on_gpu"
    assert run.exception_type == "UnsatisfiableResourcesError"
    assert run.steps == {}, "a step ran although the run could never finish"


def test_a_gpu_step_discovered_at_runtime_fails_at_once(caplog):
    """Refused, and nothing else said: a warning that it asked for more than "this machine"
    offers and would run alone came first."""
    started = time.monotonic()
    with on_ray(), pytest.raises(PipelineRunFailedError) as info:
        dynamic_gpu(1)
    assert time.monotonic() - started < 30
    assert "more than this machine offers" not in caplog.text
    assert info.value.invocation_id == "train_on_gpu"
    run = Client().get_pipeline_run(info.value.run_id)
    assert run.steps["emit"].status == "completed"
    failed = run.steps["train_on_gpu"]
    assert failed.status == "failed"
    assert failed.exception_type == "UnsatisfiableResourcesError"
    assert "gpu_count=1" in failed.exception_message and "GPU=0" in failed.exception_message


# ---- scale and the loop on the cluster ------------------------------------------------------


def test_a_fan_out_of_200_steps():
    started = time.monotonic()
    with on_ray():
        value = fan_out(200)
    elapsed = time.monotonic() - started
    assert value == sum(i * i for i in range(200))
    run = fan_out.last_run
    assert len(run.steps) == 202
    assert {str(step_run.status) for step_run in run.steps.values()} == {"completed"}
    print(f"200-step fan-out on Ray: {elapsed:.2f}s")


def test_the_cluster_loop_runs_a_dynamic_pipeline_in_a_ray_task():
    with on_ray(loop="cluster"):
        loop_pid, *squares = loop_identity(3)
    assert squares == [0, 1, 4]
    assert loop_pid != os.getpid(), "the pipeline body ran in the driver"
    run = loop_identity.last_run
    assert run.snapshot.is_dynamic and run.status == "completed"
    # the loop task's id: unique to this orchestration process
    assert run.orchestrator_run_id.startswith("ray-") and len(run.orchestrator_run_id) > 40


@pytest.mark.parametrize("loop", ["driver", "cluster"])
def test_every_task_of_a_static_run_sees_its_orchestrator_run_id(loop):
    with on_ray(loop=loop):
        seen = static_run_id()
    run = static_run_id.last_run
    assert seen == run.orchestrator_run_id == f"ray-{run.id}"


# ---- quick steps share Ray tasks -------------------------------------------------------------


@pytest.fixture
def lenient_quickness(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trivial steps count as quick however busy the machine: under a loaded test run a
    trivial step's wall time often exceeds 5 ms, and the tests are about what batches do."""
    from branchwork.orchestrators import ray_launcher

    monkeypatch.setattr(ray_launcher, "QUICK_SECONDS", 0.2)
    monkeypatch.setattr(ray_launcher, "SLOW_SECONDS", 5.0)


def batched(run: Any, attempts: int = 5) -> list[str]:
    """The Ray task of each step of the first of up to `attempts` runs in which quick steps
    shared tasks: the step's latest attempts tell whether it is quick, and on a busy machine
    the first ones (each worker's first step imports) often are not."""
    for _ in range(attempts):
        tasks = run()
        if len(set(tasks)) < len(tasks):
            return tasks
    raise AssertionError(f"no two steps shared a Ray task in {attempts} runs")


def test_quick_steps_share_ray_tasks_and_each_is_recorded_on_its_own(lenient_quickness):
    with on_ray():
        tasks = batched(lambda: quick_fan_out(300))
    run = quick_fan_out.last_run
    assert len(run.steps) == 300
    assert {str(step_run.status) for step_run in run.steps.values()} == {"completed"}
    per_task = sorted(tasks.count(task) for task in set(tasks))
    assert per_task[-1] <= 16  # MAX_BATCH
    by_task: dict[str, list[Any]] = {}
    for i, task in enumerate(tasks):
        by_task.setdefault(task, []).append(run.steps["task_of" if i == 0 else f"task_of_{i + 1}"])
    for shared in by_task.values():  # one after another, each timed on its own
        shared.sort(key=lambda s: s.start_time)
        assert all(s.start_time <= s.end_time for s in shared)
        assert all(a.end_time <= b.start_time for a, b in zip(shared, shared[1:]))


def test_slow_steps_or_batch_steps_false_run_one_ray_task_each():
    with on_ray():
        slow = slow_fan_out(40)
    with on_ray(batch_steps=False):
        quick = quick_fan_out(100)
    assert len(set(slow)) == 40
    assert len(set(quick)) == 100


def test_a_step_failing_in_a_batch_fails_alone(lenient_quickness):
    with on_ray(), pytest.raises(PipelineRunFailedError):
        one_bad_item(200)
    steps = one_bad_item.last_run.steps
    failed = {name: s for name, s in steps.items() if str(s.status) != "completed"}
    assert list(failed) == ["task_or_fails_101"]
    assert failed["task_or_fails_101"].exception_message == "item 100 is bad"
    assert len(steps) == 200


def test_a_worker_dying_in_a_batch_fails_its_steps_which_their_retries_run_again(
    tmp_path, lenient_quickness
):
    with on_ray():
        for attempt in range(5):  # until a batch ran (on a busy machine, not at once)
            folder = tmp_path / str(attempt)
            folder.mkdir()
            tasks = one_dying_item(300, str(folder))
            if (folder / "died").exists():
                break
        else:
            raise AssertionError("no two steps shared a Ray task in 5 runs")
    assert len(tasks) == 300
    died = int((folder / "died").read_text())
    retried = [a for a in one_dying_item.last_run.attempts if str(a.status) == "retried"]
    names = {a.name for a in retried}
    assert f"dies_in_a_batch_{died + 1}" in names and len(names) >= 2, names  # it, its batch
    assert all("died with its worker process" in a.exception_message for a in retried)
    assert all("a batch of quick steps, shared with" in a.exception_message for a in retried)


# ---- retries, dying workers, cancellation ---------------------------------------------------


def test_retries_are_the_loops_and_each_attempt_is_recorded(tmp_path):
    log = tmp_path / "attempts.log"
    with on_ray():
        assert retried(str(log)) == 3
    assert log.read_text().splitlines() == ["1", "2", "3"]
    run = retried.last_run
    assert [(a.attempt, str(a.status)) for a in run.attempts] == [
        (1, "retried"),
        (2, "retried"),
        (3, "completed"),
    ]


def test_a_step_whose_worker_dies_fails_once_without_ray_retrying_it(tmp_path):
    log = tmp_path / "runs.log"
    with on_ray(), pytest.raises(PipelineRunFailedError) as info:
        dying(str(log))
    assert log.read_text().splitlines() == ["ran"], "Ray ran the step again on its own"
    run = Client().get_pipeline_run(info.value.run_id)
    assert run.steps["die"].status == "failed"
    assert "died with its worker process" in run.steps["die"].exception_message


def test_cancel_kills_the_running_step_tasks(tmp_path):
    request = StepRequest(
        run_id="r",
        run_name="r",
        pipeline_name="p",
        invocation_id="sleep_until_killed",
        step_run_id="s",
        attempt=1,
        step=sleep_until_killed,
        inputs={"marker_dir": str(tmp_path)},
        artifact_store=LocalArtifactStore(str(tmp_path / "artifacts")),
    )
    results: queue.SimpleQueue[StepResult] = queue.SimpleQueue()
    launcher = RayLauncher(ClusterResources.current(), step_cpus=0.25)
    launcher.launch(request, results.put)
    pid = int(wait_for_file(tmp_path / "sleeper.pid"))
    launcher.cancel()
    result = results.get(timeout=30)
    launcher.shutdown()
    assert not result.ok and "was cancelled" in str(result.error)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and "Z" not in _state(pid):
        assert time.monotonic() < deadline, "the step's worker process outlived cancel()"
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):  # gone between the two looks (ESRCH)
        return "X"


STOPPABLE = """
import os, sys, time
from pathlib import Path
from branchwork import pipeline, step
from branchwork.artifact_stores import LocalArtifactStore
from branchwork.orchestrators.ray import RayOrchestrator
from branchwork.stack import Stack, active_stack

@step
def sleeper(marker_dir: str) -> int:
    Path(marker_dir, "step.pid").write_text(str(os.getpid()))
    time.sleep(120)
    return 0

@pipeline(dynamic=True, enable_cache=False)
def stoppable(marker_dir: str):
    return sleeper(marker_dir)

if __name__ == "__main__":
    address, loop, marker_dir = sys.argv[1:]
    store = LocalArtifactStore(os.path.join(marker_dir, "artifacts"))
    with active_stack(Stack("ray", RayOrchestrator(address=address, loop=loop), store)):
        stoppable(marker_dir)
"""


def stopped_driver(tmp_path: Path, loop: str, stop: Callable[[subprocess.Popen[bytes], int], None]):
    """Run STOPPABLE in a driver of its own attached to the test cluster (so that it can take
    real signals), `stop(driver, step_pid)` it once its step runs, and return the run once
    the step's worker is gone."""
    script = tmp_path / "stoppable.py"
    script.write_text(STOPPABLE)
    address = ray.get_runtime_context().gcs_address
    driver = subprocess.Popen(
        [sys.executable, str(script), address, loop, str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        pid = int(wait_for_file(tmp_path / "step.pid"))
        stop(driver, pid)
    finally:
        driver.kill()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and _state(pid) != "Z":
        assert time.monotonic() < deadline, "the step's worker process outlived the run"
        time.sleep(0.05)
    (run,) = Client().list_pipeline_runs()
    return Client().get_pipeline_run(run.id)


@pytest.mark.parametrize("loop", ["driver", "cluster"])
def test_two_ctrl_c_in_the_driver_stop_the_run_and_kill_its_step_tasks(tmp_path, loop):
    def twice(driver: subprocess.Popen[bytes], pid: int) -> None:
        driver.send_signal(signal.SIGINT)  # a graceful stop: the step runs on
        time.sleep(0.5)
        assert Path(f"/proc/{pid}").exists()
        driver.send_signal(signal.SIGINT)  # abandon it
        assert driver.wait(60) != 0

    run = stopped_driver(tmp_path, loop, twice)
    assert (run.status, run.steps["sleeper"].status) == ("stopped", "stopped")


@pytest.mark.parametrize("loop", ["driver", "cluster"])
def test_sigterm_to_the_driver_stops_the_run_at_once_and_kills_its_step_tasks(tmp_path, loop):
    """`ray.init` sets a SIGTERM handler of its own (`sys.exit`), which replaced the run's:
    with the loop in the driver, the driver waited for its steps (for ever, for a step that
    never ends), then recorded the run failed with "SystemExit: 15"."""

    def terminate(driver: subprocess.Popen[bytes], _pid: int) -> None:
        driver.send_signal(signal.SIGTERM)
        assert driver.wait(30) != 0

    run = stopped_driver(tmp_path, loop, terminate)
    assert (run.status, run.steps["sleeper"].status) == ("stopped", "stopped")


# ---- settings -------------------------------------------------------------------------------


def test_settings_are_checked_and_rebuild_the_orchestrator_from_the_stack(tmp_path):
    with pytest.raises(ConfigurationError, match="loop"):
        RayOrchestrator(loop="nowhere")
    with pytest.raises(ConfigurationError, match="num_cpus"):
        RayOrchestrator(address="auto", num_cpus=2)
    with pytest.raises(ConfigurationError, match="max_workers"):
        RayOrchestrator(max_workers=0)
    orchestrator = RayOrchestrator(
        "remote",
        address="ray://head:10001",
        loop="cluster",
        step_cpus=0.5,
        init_args={"runtime_env": {"pip": ["numpy"]}},
    )
    stack = Stack("s", orchestrator, LocalArtifactStore(str(tmp_path)))
    rebuilt = Stack.from_json(stack.to_json()).orchestrator
    assert isinstance(rebuilt, RayOrchestrator)
    assert rebuilt.name == "remote" and rebuilt.config == orchestrator.config
    assert rebuilt.supports_dynamic_pipelines


def test_a_step_that_cannot_be_sent_fails_alone_and_the_loop_goes_on():
    """Its closure holds a lock (it does not pickle): the loop crashed ("The orchestration
    loop ... crashed: cannot pickle '_thread.lock' object") and the step stayed `running`."""
    lock = threading.Lock()

    @step
    def guarded(x: int) -> int:
        with lock:
            return x + 1

    @pipeline(enable_cache=False)
    def unsendable():
        return guarded(echo(1))

    with on_ray(), pytest.raises(PipelineRunFailedError) as info:
        unsendable()
    assert str(info.value).endswith(
        "step 'guarded' raised StepFailedError: Step 'guarded' could not be sent to run: "
        "TypeError: cannot pickle '_thread.lock' object"
    )
    steps = unsendable.last_run.steps
    assert {name: str(s.status) for name, s in steps.items()} == {
        "echo": "completed",
        "guarded": "failed",
    }
