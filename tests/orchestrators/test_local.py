"""The local orchestrator: parallel steps, resource admission, the orchestrator API."""

from __future__ import annotations

import logging
import time

import pytest

from branchwork import Client, pipeline, step
from branchwork.config import ResourceSettings
from branchwork.exceptions import (
    ConfigurationError,
    OrchestratorError,
    PipelineRunStoppedError,
    RunAlreadyStartedError,
)
from branchwork.metadata.runs import mark_run_stopped, start_run
from branchwork.metadata.store import get_engine
from branchwork.orchestrators import BaseOrchestrator, LocalOrchestrator
from branchwork.stack import Stack, active_stack, get_active_stack
from processes import Spawned, python, python_env

SPANS: dict[str, tuple[float, float]] = {}


@step
def nap(i: int) -> int:
    start = time.monotonic()
    time.sleep(1)
    SPANS[f"nap{i}"] = (start, time.monotonic())
    return i


@step(settings={"resources": ResourceSettings(cpu_count=1, memory="1GB")})
def one_cpu(i: int) -> int:
    start = time.monotonic()
    time.sleep(0.2)
    SPANS[f"cpu{i}"] = (start, time.monotonic())
    return i


@step(settings={"resources": ResourceSettings(cpu_count=8, memory="16GB")})
def eight_cpus(i: int) -> int:
    start = time.monotonic()
    time.sleep(0.1)
    SPANS[f"big{i}"] = (start, time.monotonic())
    return i


def max_overlap(prefix: str) -> int:
    spans = [span for name, span in SPANS.items() if name.startswith(prefix)]
    return max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)


def on(orchestrator: BaseOrchestrator):
    return active_stack(Stack("test", orchestrator, get_active_stack().artifact_store))


def test_eight_independent_one_second_steps_finish_in_under_two_seconds():
    @pipeline(enable_cache=False)
    def naps():
        return [nap(i) for i in range(8)]

    start = time.monotonic()
    assert naps() == list(range(8))
    assert time.monotonic() - start < 2.0
    assert max_overlap("nap") == 8


def test_steps_with_resources_are_admitted_against_the_capacity():
    SPANS.clear()

    @pipeline(enable_cache=False)
    def fan():
        return [one_cpu(i) for i in range(6)]

    with on(LocalOrchestrator(cpu_count=2, memory="64GB")):
        assert fan() == list(range(6))
    assert max_overlap("cpu") == 2
    SPANS.clear()
    with on(LocalOrchestrator(cpu_count=8, memory="2GB")):  # memory is the limit now
        fan()
    assert max_overlap("cpu") == 2


def test_a_step_larger_than_the_machine_runs_alone_with_a_warning(caplog):
    SPANS.clear()

    @pipeline(enable_cache=False)
    def big():
        return [eight_cpus(i) for i in range(3)] + [one_cpu(9)]

    with (
        caplog.at_level(logging.WARNING, "branchwork"),
        on(LocalOrchestrator(cpu_count=2, memory="8GB")),
    ):
        assert big() == [0, 1, 2, 9]
    assert max_overlap("big") == 1
    warnings = [r.getMessage() for r in caplog.records if "more than this" in r.getMessage()]
    assert len(warnings) == 1 and "eight_cpus" in warnings[0]
    assert warnings[0].endswith(
        "it runs once no other step holds resources, and no step that asks for some starts "
        "beside it (steps asking for none still may)."
    )
    big_spans = [span for name, span in SPANS.items() if name.startswith("big")]
    small_start, small_end = SPANS["cpu9"]
    assert all(small_end <= s or e <= small_start for s, e in big_spans)


def test_local_orchestrator_api():
    orchestrator = LocalOrchestrator()
    assert orchestrator.supports_dynamic_pipelines is True
    assert orchestrator.flavor == "local"
    with pytest.raises(OrchestratorError, match="not running a pipeline"):
        orchestrator.get_orchestrator_run_id()
    with pytest.raises(OrchestratorError, match="max_workers"):
        LocalOrchestrator(max_workers=-1)


def test_supports_dynamic_pipelines_follows_the_override():
    class Dynamic(BaseOrchestrator):
        def submit_pipeline(self, snapshot, stack, environment, placeholder_run=None):
            return None

        def submit_dynamic_pipeline(self, snapshot, stack, environment, placeholder_run=None):
            return None

        def get_orchestrator_run_id(self) -> str:
            return "id"

    class Static(Dynamic):
        submit_dynamic_pipeline = BaseOrchestrator.submit_dynamic_pipeline

    assert Dynamic().supports_dynamic_pipelines is True
    assert Static().supports_dynamic_pipelines is False


def test_each_run_gets_its_own_orchestrator_run_id():
    ids = set()

    @pipeline
    def quick():
        one = one_cpu.with_options(enable_cache=False)
        return one(1)

    for _ in range(2):
        quick()
        ids.add(quick.last_run.orchestrator_run_id)
    assert len(ids) == 2


LAST_RUN = """
import sys
from branchwork import pipeline, step

@step(enable_cache=False)
def tagged(tag: str) -> str:
    return tag

@pipeline(enable_cache=False)
def same(tag: str):
    return tagged(tag)

same(sys.argv[1])
print(same.last_run.parameters["tag"])
"""


def test_last_run_is_the_run_this_call_started_in_every_process(tmp_path):
    """Four processes run the same pipeline on one store at once: each `last_run` is its own
    run, never the newest one of another process."""
    script = tmp_path / "last_run.py"
    script.write_text(LAST_RUN)
    env = python_env(tmp_path / "home")
    callers = [Spawned(python(str(script), f"p{i}"), env=env) for i in range(4)]
    try:
        outputs = [caller.wait(120) for caller in callers]
    finally:
        for caller in callers:
            caller.__exit__(None, None, None)
    assert [(code, out.strip()) for code, out, _ in outputs] == [(0, f"p{i}") for i in range(4)], [
        err for _, _, err in outputs
    ]


def test_last_run_is_per_thread():
    import threading

    @step(enable_cache=False)
    def tagged(tag: str) -> str:
        return tag

    @pipeline(enable_cache=False)
    def same(tag: str):
        return tagged(tag)

    seen: dict[str, str] = {}

    def call(tag: str) -> None:
        same(tag)
        seen[tag] = same.last_run.parameters["tag"]

    threads = [threading.Thread(target=call, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert seen == {f"t{i}": f"t{i}" for i in range(4)}
    with pytest.raises(ConfigurationError, match="has not been run in this thread yet"):
        _ = same.last_run


class ClaimedFirst(LocalOrchestrator):
    """Someone else gets to the run between its creation and its loop's start: `then` is
    what they do to it."""

    def __init__(self, then, **config):
        super().__init__(**config)
        self.then = then

    def loop_session(self, request, orchestrator_run_id):
        self.then(get_engine(), request.run.id)
        return super().loop_session(request, orchestrator_run_id)


@step
def one() -> int:
    return 1


@pipeline(enable_cache=False)
def just_one():
    return one()


@pipeline(enable_cache=False)
def one_pass():
    """Its body reads a value: in the caller's process its loop starts as it first does."""
    return one() + 1


def stopped_where_submitted(engine, run_id):
    mark_run_stopped(engine, run_id, "Stopped by Ctrl-C before its loop ran.")


def started_elsewhere(engine, run_id):
    assert start_run(engine, run_id, "elsewhere", time.time()) is None


@pytest.mark.parametrize("pipeline_obj", [just_one, one_pass], ids=["static", "one_pass"])
def test_a_run_stopped_before_its_loop_began_is_not_started_after_all(pipeline_obj):
    """The one-pass call hung for good: it failed a session whose loop never started."""
    stack = Stack(
        "claimed", ClaimedFirst(stopped_where_submitted), get_active_stack().artifact_store
    )
    with active_stack(stack), pytest.raises(PipelineRunStoppedError) as info:
        pipeline_obj()
    run = Client().get_pipeline_run("latest")
    assert str(info.value) == (
        f"Pipeline '{pipeline_obj.name}' run '{run.name}' stopped: "
        "KeyboardInterrupt: Stopped by Ctrl-C before its loop ran."  # nothing ran to raise it
    )
    assert (run.status, run.start_time, run.steps) == ("stopped", None, {})
    assert run.exception_message == "Stopped by Ctrl-C before its loop ran."


@pytest.mark.parametrize("pipeline_obj", [just_one, one_pass], ids=["static", "one_pass"])
def test_a_run_another_loop_has_started_is_not_started_again(pipeline_obj):
    stack = Stack("claimed", ClaimedFirst(started_elsewhere), get_active_stack().artifact_store)
    refused = pytest.raises(RunAlreadyStartedError, match=r"already started \(status running\)")
    with active_stack(stack), refused:
        pipeline_obj()
    run = Client().get_pipeline_run("latest")
    assert (run.status, run.orchestrator_run_id, run.steps) == ("running", "elsewhere", {})


@step(runtime="isolated")
def wants_a_process(i: int) -> int:
    return i


@pipeline(enable_cache=False)
def isolated_three():
    return [wants_a_process(i) for i in range(3)]


def test_an_isolated_step_on_the_local_orchestrator_is_said_to_run_in_a_thread(caplog):
    """runtime='isolated' was silently ignored here: a crash in the step ended the run."""
    assert isolated_three() == [0, 1, 2]
    told = [r.getMessage() for r in caplog.records if "runtime='isolated'" in r.getMessage()]
    assert told == [
        "Step 'wants_a_process' asks for runtime='isolated', but this orchestrator runs steps "
        "in threads: it runs in one, and a crash in it ends the whole run. Use the "
        "local_process orchestrator (or Ray) to give it a process of its own."
    ]
