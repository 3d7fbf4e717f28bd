"""The scheduling core, tested without threads: events in, commands out."""

from branchwork.runtime.engine import (
    Added,
    CacheMissed,
    Cancel,
    CheckCache,
    Engine,
    FailureMode,
    Finished,
    GaveUp,
    Launch,
    NotRun,
    Request,
    RetryDue,
    RetryLater,
    State,
)

NOTHING = Request()


def add(inv_id, deps=(), request=NOTHING, cacheable=False, attempts=1):
    return Added(inv_id, tuple(deps), request, cacheable, attempts)


def launched(commands):
    return [c.invocation_id for c in commands if isinstance(c, Launch)]


def test_independent_steps_launch_up_to_max_workers():
    engine = Engine(Request(2, 0, 0), max_workers=3)
    commands = engine.handle(*(add(f"s{i}") for i in range(5)))
    assert launched(commands) == ["s0", "s1", "s2"]
    assert launched(engine.handle(Finished("s1", True))) == ["s3"]


def test_child_waits_for_all_parents_then_checks_cache():
    engine = Engine(Request(2, 0, 0), max_workers=8)
    assert launched(engine.handle(add("a"), add("b"), add("c", ["a", "b"], cacheable=True))) == [
        "a",
        "b",
    ]
    assert engine.handle(Finished("a", True)) == []
    assert engine.handle(Finished("b", True)) == [CheckCache("c")]
    assert engine.state("c") is State.CACHE_CHECK
    assert launched(engine.handle(CacheMissed("c"))) == ["c"]
    engine.handle(Finished("c", True))
    assert engine.idle


def test_cache_hit_reported_as_finished_releases_children_without_launch():
    engine = Engine(Request(2, 0, 0), max_workers=8)
    assert engine.handle(add("a", cacheable=True)) == [CheckCache("a")]
    commands = engine.handle(add("b", ["a"]), Finished("a", True))
    assert launched(commands) == ["b"]


def test_resources_admitted_against_capacity_in_order():
    engine = Engine(Request(2, 4_000, 0), max_workers=8)
    one_cpu = Request(1, 1_000, 0)
    commands = engine.handle(*(add(f"r{i}", request=one_cpu) for i in range(4)))
    assert launched(commands) == ["r0", "r1"]
    assert launched(engine.handle(Finished("r0", True))) == ["r2"]


def test_memory_is_a_limit_too():
    engine = Engine(Request(8, 4_000, 0), max_workers=8)
    big = Request(1, 3_000, 0)
    assert launched(engine.handle(add("m0", request=big), add("m1", request=big))) == ["m0"]


def test_plain_steps_run_beside_blocked_resourced_steps():
    engine = Engine(Request(1, 0, 0), max_workers=8)
    commands = engine.handle(
        add("r0", request=Request(1, 0, 0)), add("r1", request=Request(1, 0, 0)), add("p")
    )
    assert launched(commands) == ["r0", "p"]


def test_oversized_step_runs_alone_when_nothing_else_holds_resources():
    engine = Engine(Request(2, 8_000, 0), max_workers=8)
    small, huge = Request(1, 0, 0), Request(8, 16_000, 0)
    commands = engine.handle(
        add("small", request=small), add("huge", request=huge), add("after", request=small)
    )
    assert launched(commands) == ["small"]
    commands = engine.handle(Finished("small", True))
    assert [c for c in commands if isinstance(c, Launch)] == [Launch("huge", 1, True)]
    assert launched(engine.handle(Finished("huge", True))) == ["after"]


def test_stop_on_failure_stops_pending_but_lets_running_finish():
    engine = Engine(Request(2, 0, 0), max_workers=2)
    engine.handle(add("a"), add("b"), add("c"), add("d", ["a"]))
    commands = engine.handle(Finished("a", False))
    assert GaveUp("a") in commands
    assert {c.invocation_id for c in commands if isinstance(c, NotRun)} == {"c", "d"}
    assert engine.state("b") is State.RUNNING
    assert engine.handle(add("e")) == [NotRun("e", "a")]
    engine.handle(Finished("b", True))
    assert engine.idle


def test_continue_on_failure_skips_only_dependents():
    engine = Engine(Request(2, 0, 0), max_workers=8, failure_mode=FailureMode.CONTINUE_ON_FAILURE)
    engine.handle(add("a"), add("b"), add("c", ["a"]), add("d", ["c"]), add("e", ["b"]))
    commands = engine.handle(Finished("a", False))
    assert {c.invocation_id for c in commands if isinstance(c, NotRun)} == {"c", "d"}
    assert launched(engine.handle(Finished("b", True))) == ["e"]


def test_retries_until_attempts_are_used_up():
    engine = Engine(Request(2, 0, 0), max_workers=8)
    assert engine.handle(add("a", attempts=3)) == [Launch("a", 1, False)]
    assert engine.handle(Finished("a", False)) == [RetryLater("a", 2)]
    assert engine.handle(RetryDue("a")) == [Launch("a", 2, False)]
    assert engine.handle(Finished("a", False)) == [RetryLater("a", 3)]
    assert engine.handle(RetryDue("a")) == [Launch("a", 3, False)]
    assert engine.handle(Finished("a", False)) == [GaveUp("a")]
    assert engine.idle


def test_cancel_marks_everything_not_started_as_not_run():
    engine = Engine(Request(2, 0, 0), max_workers=1)
    engine.handle(add("a"), add("b"))
    commands = engine.handle(Cancel(None))
    assert commands == [NotRun("b", None)]
    assert not engine.idle
    engine.handle(Finished("a", True))
    assert engine.idle


def test_child_of_failed_parent_added_later_is_not_run():
    engine = Engine(Request(2, 0, 0), max_workers=8, failure_mode=FailureMode.CONTINUE_ON_FAILURE)
    engine.handle(add("a"))
    engine.handle(Finished("a", False))
    assert engine.handle(add("b", ["a"])) == [NotRun("b", "a")]
