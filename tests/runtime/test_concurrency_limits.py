"""Concurrency limits: `@step(max_concurrency=n)`, and named limits several steps share
(`@step(concurrency_limit="api")`, sized by `concurrency_limits={"api": n}` on the pipeline,
its options or a run configuration). The engine admits a step only when a slot is free, so
never more run at once; the real runs record the most that did, from the steps' own
start/end times."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter

import pytest
from scheduling import ORCHESTRATORS, added, drive, engine, launched, most_at_once, on, window
from scheduling import windows as windows_of

from branchwork import pipeline, step
from branchwork.config import StepRetryConfig
from branchwork.exceptions import ConfigurationError, PipelineRunFailedError, StepInvocationError
from branchwork.runtime.events import Finished, Launch, NotRun, RetryScheduled, Stop

# ---- the engine, command by command ----------------------------------------------------------

API = (("api", 2),)


def test_a_step_waiting_for_a_slot_is_not_launched():
    core = engine()
    assert launched(drive(core, *(added(f"call_{i}", limits=API) for i in range(5)))) == [
        "call_0",
        "call_1",
    ]
    assert core.running == 2
    assert launched(drive(core, Finished("call_1", True))) == ["call_2"]
    assert launched(drive(core, Finished("call_0", True), Finished("call_2", True))) == [
        "call_3",
        "call_4",
    ]


def test_steps_waiting_for_a_slot_hold_up_no_one_else():
    core = engine(workers=3)
    calls = [added(f"call_{i}", limits=(("api", 1),)) for i in range(3)]
    assert launched(drive(core, *calls, added("other"), added("more"))) == [
        "call_0",
        "other",
        "more",
    ]


def test_a_named_limit_is_shared_by_every_step_that_names_it():
    core = engine()
    events = [added("embed", limits=API), added("summarize", limits=API), added("embed_2")]
    events.append(added("rank", limits=API))
    assert launched(drive(core, *events)) == ["embed", "summarize", "embed_2"]
    assert launched(drive(core, Finished("summarize", True))) == ["rank"]


def test_a_step_counts_against_each_of_its_limits():
    core = engine()
    both = (("step:embed", 1), ("api", 2))
    events = [added("embed", limits=both), added("embed_2", limits=both)]
    events.append(added("other", limits=API))
    assert launched(drive(core, *events)) == ["embed", "other"]
    assert launched(drive(core, Finished("other", True))) == []  # embed_2: its own limit
    assert launched(drive(core, Finished("embed", True))) == ["embed_2"]


def test_awaited_steps_hold_no_worker_but_their_limit_holds():
    core = engine(workers=1)
    awaited = [added(f"fetch_{i}", holds_worker=False, limits=(("fetch", 3),)) for i in range(5)]
    assert launched(drive(core, added("sync"), added("sync_2"), *awaited)) == [
        "sync",
        "fetch_0",
        "fetch_1",
        "fetch_2",
    ]
    assert launched(drive(core, Finished("sync", True))) == ["sync_2"]
    assert launched(drive(core, Finished("fetch_1", True))) == ["fetch_3"]


def test_a_failed_attempt_gives_its_slot_to_the_next_step():
    core = engine()
    limit = (("api", 1),)
    retrying = added("call", limits=limit, retry=StepRetryConfig(max_retries=1, delay=5.0))
    drive(core, retrying, added("call_2", limits=limit))
    commands = core.handle(Finished("call", False), now=1.0)
    assert [type(c) for c in commands] == [RetryScheduled, Launch]
    assert launched(commands) == ["call_2"]
    assert launched(core.handle(now=6.0)) == []  # due, but call_2 holds the slot
    assert launched(core.handle(Finished("call_2", True), now=7.0)) == ["call"]


def test_steps_waiting_for_a_slot_are_not_run_when_the_run_stops():
    core = engine()
    drive(core, *(added(f"call_{i}", limits=API) for i in range(4)))
    commands = drive(core, Stop(abandon=False))
    assert commands == [NotRun("call_2", None), NotRun("call_3", None)]
    drive(core, Finished("call_0", True), Finished("call_1", True))
    assert core.idle


def test_never_more_than_a_limit_whatever_the_order_steps_end_in():
    limits = {"a": 3, "b": 1, "c": 5}
    rng = random.Random(7)
    core = engine(workers=6)
    running: dict[str, tuple[str, ...]] = {}
    in_limit: Counter[str] = Counter()
    most: Counter[str] = Counter()
    pending = []
    for i in range(300):
        names = tuple(rng.sample(sorted(limits), rng.randint(0, 2)))
        holds_worker = rng.random() < 0.5
        pending.append(
            added(f"s_{i}", holds_worker=holds_worker, limits=tuple((n, limits[n]) for n in names))
        )
    by_id = {event.invocation_id: event for event in pending}
    commands = drive(core, *pending[:50])
    pending = pending[50:]
    while not core.idle:
        for invocation_id in launched(commands):
            running[invocation_id] = tuple(n for n, _ in by_id[invocation_id].limits)
            in_limit.update(running[invocation_id])
            most |= in_limit
        assert all(in_limit[name] <= size for name, size in limits.items()), in_limit
        finished = rng.choice(sorted(running))
        in_limit.subtract(running.pop(finished))
        events = [Finished(finished, True), *pending[:3]]
        pending = pending[3:]
        commands = drive(core, *events)
    assert dict(most) == limits  # every limit was full at some point, never over


# ---- real runs -------------------------------------------------------------------------------


@step(enable_cache=False, max_concurrency=3)
def crunch(i: int) -> dict:
    started = time.time()
    time.sleep(0.3)
    return window(started)


@step(enable_cache=False, max_concurrency=5)
async def fetch(i: int) -> dict:
    started = time.time()
    await asyncio.sleep(0.2)
    return window(started)


@step(enable_cache=False, concurrency_limit="api")
def call_api(i: int) -> dict:
    started = time.time()
    time.sleep(0.2)
    return window(started)


@step(enable_cache=False, concurrency_limit="api")
async def call_api_async(i: int) -> dict:
    started = time.time()
    await asyncio.sleep(0.2)
    return window(started)


@pipeline(enable_cache=False)
def crunching(n: int):
    return [crunch(i) for i in range(n)]


@pipeline(enable_cache=False)
def fetching(n: int):
    return [fetch(i) for i in range(n)]


@pipeline(enable_cache=False, concurrency_limits={"api": 4})
def calling(n: int):
    return [call_api(i) for i in range(n)] + [call_api_async(i) for i in range(n)]


@pytest.mark.parametrize("flavor", ORCHESTRATORS)
def test_max_concurrency_caps_a_sync_step_exactly(flavor):
    with on(flavor):
        records = crunching(12)
    assert most_at_once(windows_of(records)) == 3
    configuration = crunching.last_run.steps["crunch"].configuration
    assert configuration is not None and configuration.config["max_concurrency"] == 3


@pytest.mark.parametrize("flavor", ORCHESTRATORS)
def test_max_concurrency_caps_an_async_step_exactly(flavor):
    with on(flavor):
        records = fetching(40)
    assert most_at_once(windows_of(records)) == 5


@pytest.mark.parametrize("flavor", ORCHESTRATORS)
def test_a_named_limit_caps_the_steps_that_share_it(flavor):
    with on(flavor):
        records = calling(10)
    assert most_at_once(windows_of(records)) == 4


@pytest.mark.parametrize("flavor", ORCHESTRATORS)
def test_a_run_configuration_sizes_a_named_limit(tmp_path, flavor):
    config = tmp_path / "run.yaml"
    config.write_text("concurrency_limits: {api: 2}\n")
    with on(flavor):
        records = calling.with_options(config_path=str(config))(6)
    assert most_at_once(windows_of(records)) == 2
    assert calling.with_options(concurrency_limits={"api": 7}).concurrency_limits == {"api": 7}


def test_a_step_naming_a_limit_the_run_does_not_size_fails_at_the_call():
    @pipeline(name="unsized")
    def unsized():
        return call_api(1)

    with pytest.raises(PipelineRunFailedError) as info:
        unsized()
    cause = info.value.__cause__
    assert isinstance(cause, StepInvocationError)
    assert str(cause) == (
        "Pipeline 'unsized': step 'call_api' counts against concurrency limit 'api', which "
        "this run does not size; pass concurrency_limits={'api': N} to @pipeline or "
        ".with_options() (sized here: none)."
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: step(max_concurrency=0)(lambda: 1),
            "Step '<lambda>': max_concurrency must be a whole number of at least 1, got 0",
        ),
        (
            lambda: step(concurrency_limit="")(lambda: 1),
            "Step '<lambda>': concurrency_limit must be a non-empty string, got ''",
        ),
        (
            lambda: pipeline(concurrency_limits={"api": 2.5})(lambda: 1),
            "Pipeline '<lambda>': concurrency_limits['api'] must be a whole number of at least "
            "1, got 2.5",
        ),
        (
            lambda: calling.with_options(concurrency_limits=["api"]),
            "Pipeline 'calling': concurrency_limits must be a mapping of limit names to sizes, "
            "got list",
        ),
    ],
)
def test_limits_are_checked_where_they_are_set(make, message):
    with pytest.raises(ConfigurationError) as info:
        make()
    assert str(info.value) == message


def test_a_run_configuration_with_a_bad_limit_names_the_file_and_key(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("concurrency_limits: {api: -1}\n")
    with pytest.raises(ConfigurationError) as info:
        calling.with_options(config_path=str(config))
    assert str(info.value) == (
        f"{config}: concurrency_limits['api'] must be a whole number of at least 1, got -1"
    )
