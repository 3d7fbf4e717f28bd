"""The scheduling core, tested without threads, clocks or a store: events in, commands out.

`Script` plays the loop: it answers each `ComputeKey` with the key (and cache hit) a scenario
gives, and collects every command, so whole runs — retries in time, resumes, divergence, cache
hits — are a few lines each.
"""

from dataclasses import dataclass

from branchwork.config.retry import StepRetryConfig
from branchwork.runtime.engine import Engine, State
from branchwork.runtime.events import (
    Abandoned,
    Added,
    Cancel,
    ComputeKey,
    Diverged,
    FailureMode,
    Finished,
    GaveUp,
    KeyComputed,
    Launch,
    Missed,
    NotRun,
    Request,
    RetryScheduled,
    Reuse,
    Stop,
    UseCached,
)
from branchwork.runtime.graph_check import GraphCheck

NOTHING = Request()


def add(
    inv_id,
    deps=(),
    request=NOTHING,
    cacheable=False,
    retries=0,
    delay=0.0,
    step=None,
    expire_after=None,
    refresh=False,
):
    return Added(
        inv_id,
        step or inv_id.rstrip("0123456789_"),
        "code",
        tuple(deps),
        request,
        cacheable,
        StepRetryConfig(max_retries=retries, delay=delay),
        expire_after,
        refresh,
    )


def launched(commands):
    return [c.invocation_id for c in commands if isinstance(c, Launch)]


class Script:
    """The loop's part: keys are the invocation id unless `keys` says otherwise (None: the
    key could not be computed); `hits` are what the cache holds, by key, with the time each
    was made in `made` (default 0)."""

    def __init__(self, engine, keys=None, hits=None, made=None):
        self.engine = engine
        self.keys = keys or {}
        self.hits = hits or {}
        self.made = made or {}
        self.commands = []

    def handle(self, *events, now=0.0):
        """Feed events; answer key requests as the loop would; return every command."""
        out = []
        commands = self.engine.handle(*events, now=now)
        while commands:
            out.extend(commands)
            answers = [
                KeyComputed(
                    c.invocation_id,
                    key := self.keys.get(c.invocation_id, c.invocation_id),
                    self.hits.get(key) if c.look_up else None,
                    self.made.get(key, 0.0) if c.look_up and key in self.hits else None,
                )
                for c in commands
                if isinstance(c, ComputeKey)
            ]
            commands = self.engine.handle(*answers, now=now) if answers else []
        self.commands.extend(out)
        return [c for c in out if not isinstance(c, (ComputeKey, Missed))]

    def verdicts(self):
        """Why each invocation was not served from the cache, as the engine said."""
        return {c.invocation_id: c.verdict for c in self.commands if isinstance(c, Missed)}


def engine(
    cpus=2,
    workers=8,
    mode=FailureMode.STOP_ON_FAILURE,
    check=None,
    memory=0,
    keys=None,
    hits=None,
    made=None,
):
    core = Engine(Request(cpus, memory, 0), workers, failure_mode=mode, graph_check=check)
    return Script(core, keys, hits, made)


# ---- admission -----------------------------------------------------------------------------


def test_independent_steps_launch_up_to_max_workers():
    run = engine(workers=3)
    assert launched(run.handle(*(add(f"s{i}") for i in range(5)))) == ["s0", "s1", "s2"]
    assert launched(run.handle(Finished("s1", True))) == ["s3"]


def test_child_waits_for_all_parents_then_its_key_is_computed():
    run = engine()
    assert launched(run.handle(add("a"), add("b"), add("c", ["a", "b"], cacheable=True))) == [
        "a",
        "b",
    ]
    assert run.engine.handle(Finished("a", True)) == []
    assert run.engine.handle(Finished("b", True)) == [ComputeKey("c", True)]
    assert run.engine.state("c") is State.CACHE_CHECK
    assert launched(run.engine.handle(KeyComputed("c", "key-c"))) == ["c"]
    run.handle(Finished("c", True))
    assert run.engine.idle


def test_resources_admitted_against_capacity_in_order():
    run = engine(cpus=2, memory=4_000)
    one_cpu = Request(1, 1_000, 0)
    assert launched(run.handle(*(add(f"r{i}", request=one_cpu) for i in range(4)))) == [
        "r0",
        "r1",
    ]
    assert launched(run.handle(Finished("r0", True))) == ["r2"]


def test_memory_is_a_limit_too():
    run = engine(cpus=8, memory=4_000)
    big = Request(1, 3_000, 0)
    assert launched(run.handle(add("m0", request=big), add("m1", request=big))) == ["m0"]


def test_plain_steps_run_beside_blocked_resourced_steps():
    run = engine(cpus=1)
    commands = run.handle(
        add("r0", request=Request(1, 0, 0)), add("r1", request=Request(1, 0, 0)), add("p")
    )
    assert launched(commands) == ["r0", "p"]


def test_oversized_step_runs_alone_when_nothing_else_holds_resources():
    run = engine(cpus=2, memory=8_000)
    small, huge = Request(1, 0, 0), Request(8, 16_000, 0)
    commands = run.handle(
        add("small", request=small), add("huge", request=huge), add("after", request=small)
    )
    assert launched(commands) == ["small"]
    commands = run.handle(Finished("small", True))
    assert [c for c in commands if isinstance(c, Launch)] == [Launch("huge", 1, True)]
    assert launched(run.handle(Finished("huge", True))) == ["after"]


# ---- failure modes -------------------------------------------------------------------------


def test_stop_on_failure_stops_pending_but_lets_running_finish():
    run = engine(cpus=2, workers=2)
    run.handle(add("a"), add("b"), add("c"), add("d", ["a"]))
    commands = run.handle(Finished("a", False))
    assert GaveUp("a") in commands
    assert {c.invocation_id for c in commands if isinstance(c, NotRun)} == {"c", "d"}
    assert run.engine.state("b") is State.RUNNING
    assert run.handle(add("e")) == [NotRun("e", "a")]
    run.handle(Finished("b", True))
    assert run.engine.idle and run.engine.first_failure == "a"


def test_continue_on_failure_skips_only_dependents():
    run = engine(mode=FailureMode.CONTINUE_ON_FAILURE)
    run.handle(add("a"), add("b"), add("c", ["a"]), add("d", ["c"]), add("e", ["b"]))
    commands = run.handle(Finished("a", False))
    assert {c.invocation_id for c in commands if isinstance(c, NotRun)} == {"c", "d"}
    assert launched(run.handle(Finished("b", True))) == ["e"]


def test_cancel_marks_everything_not_started_as_not_run():
    run = engine(workers=1)
    run.handle(add("a"), add("b"))
    assert run.handle(Cancel(None)) == [NotRun("b", None)]
    assert not run.engine.idle
    run.handle(Finished("a", True))
    assert run.engine.idle


def test_child_of_failed_parent_added_later_is_not_run():
    run = engine(mode=FailureMode.CONTINUE_ON_FAILURE)
    run.handle(add("a"))
    run.handle(Finished("a", False))
    assert run.handle(add("b", ["a"])) == [NotRun("b", "a")]


# ---- retries: due times, no timers ---------------------------------------------------------


def test_retries_wait_their_delay_then_run_until_attempts_are_used_up():
    run = engine()
    assert run.handle(add("a", retries=2, delay=10), now=100) == [Launch("a", 1, False)]
    assert run.handle(Finished("a", False), now=101) == [RetryScheduled("a", 2, 10.0)]
    assert run.engine.state("a") is State.RETRY_WAIT and run.engine.next_due == 111
    assert run.handle(now=110.9) == []  # not yet due
    assert run.handle(now=111) == [Launch("a", 2, False)]
    assert run.handle(Finished("a", False), now=112) == [RetryScheduled("a", 3, 10.0)]
    assert run.handle(now=122) == [Launch("a", 3, False)]
    assert run.handle(Finished("a", False), now=123) == [GaveUp("a")]
    assert run.engine.idle and run.engine.next_due is None


def test_a_failure_that_another_attempt_cannot_fix_is_not_retried():
    run = engine()
    run.handle(add("a", retries=3))
    assert run.handle(Finished("a", False, retryable=False)) == [GaveUp("a")]


def test_a_stop_cancels_a_retry_waiting_for_its_time():
    run = engine()
    run.handle(add("a", retries=1, delay=5), now=0)
    run.handle(Finished("a", False), now=1)
    assert run.handle(Stop(False), now=2) == [NotRun("a", None)]
    assert run.handle(now=10) == [] and run.engine.idle


# ---- stopping ------------------------------------------------------------------------------


def test_a_graceful_stop_lets_running_steps_finish_and_starts_nothing():
    run = engine(workers=1)
    run.handle(add("a"), add("b"))
    assert run.handle(Stop(False)) == [NotRun("b", None)]
    assert run.engine.stopped and not run.engine.idle
    run.handle(Finished("a", True))
    assert run.engine.idle


def test_abandoning_gives_up_running_steps_and_ignores_their_results():
    run = engine()
    run.handle(add("a"), add("b"))
    assert run.handle(Stop(True)) == [Abandoned("a"), Abandoned("b")]
    assert run.engine.idle and run.engine.abandoned
    assert run.handle(Finished("a", True)) == []
    assert run.engine.state("a") is State.ABANDONED


# ---- the cache -----------------------------------------------------------------------------


def test_a_cache_hit_is_served_without_a_launch_and_releases_children():
    run = engine(hits={"a": "hit-of-a"})
    commands = run.handle(add("a", cacheable=True), add("b", ["a"]))
    assert commands == [UseCached("a", "hit-of-a"), Launch("b", 1, False)]
    assert run.engine.state("a") is State.DONE


def test_a_step_that_is_not_cached_is_never_looked_up():
    run = engine(hits={"a": "hit-of-a"})
    assert run.handle(add("a", cacheable=False)) == [Launch("a", 1, False)]
    assert ComputeKey("a", False) in run.commands
    assert run.verdicts() == {"a": "off"}


def test_every_miss_says_why():
    run = engine(
        keys={"failed": None},
        hits={"old": "hit-of-old", "fresh": "hit-of-fresh", "refreshed": "hit-of-refreshed"},
        made={"old": 0.0, "fresh": 95.0},
    )
    commands = run.handle(
        add("new", cacheable=True),
        add("failed", cacheable=True),
        add("old", cacheable=True, expire_after=60.0),
        add("fresh", cacheable=True, expire_after=60.0),
        add("refreshed", cacheable=True, refresh=True),
        now=100.0,
    )
    assert run.verdicts() == {
        "new": "miss",
        "failed": "key_failed",
        "old": "expired",
        "refreshed": "refresh",
    }
    assert UseCached("fresh", "hit-of-fresh") in commands
    assert sorted(launched(commands)) == ["failed", "new", "old", "refreshed"]
    assert ComputeKey("refreshed", False) in run.commands  # a refresh is not even looked up


# ---- resume: replay by invocation id -------------------------------------------------------


@dataclass
class Attempt:
    step_name: str
    code_hash: str
    cache_key: str | None
    status: str
    attempt: int
    invalidated: bool = False


def test_a_resume_takes_over_completed_invocations_and_runs_the_rest_as_next_attempts():
    replay = {
        "load": Attempt("load", "code", "k-load", "completed", 1),
        "train": Attempt("train", "code", "k-train", "failed", 2),
    }
    run = engine(check=GraphCheck("r", replay), keys={"load": "k-load", "train": "k-train"})
    commands = run.handle(add("load"), add("train", ["load"]))
    assert commands == [Reuse("load", replay["load"]), Launch("train", 3, False)]
    assert ComputeKey("load", False) in run.commands  # replayed: no cache lookup


def test_a_resumed_invocation_that_changed_diverges_and_fails_the_run():
    replay = {"load": Attempt("load", "old-code", "k-load", "completed", 1)}
    run = engine(check=GraphCheck("r", replay), keys={"load": "k-load"})
    commands = run.handle(add("load"), add("train", ["load"]))
    (diverged,) = [c for c in commands if isinstance(c, Diverged)]
    assert "invocation 'load' runs step 'load' whose code changed since it ran" in diverged.message
    assert commands[1:] == [GaveUp("load"), NotRun("train", "load")]
    assert run.engine.first_failure == "load"


def test_a_resume_runs_an_invalidated_result_again_and_what_its_new_value_changes():
    """'load' was invalidated since: it runs again. 'train' gets its new output (a new key)
    and runs again rather than diverging; 'report', whose key is the same, is taken over."""
    replay = {
        "load": Attempt("load", "code", "k-load", "completed", 1, invalidated=True),
        "train": Attempt("train", "code", "k-train-before", "completed", 1),
        "report": Attempt("report", "code", "k-report", "completed", 1),
    }
    keys = {"load": "k-load", "train": "k-train", "report": "k-report"}
    run = engine(check=GraphCheck("r", replay), keys=keys)
    assert run.handle(add("load"), add("train", ["load"]), add("report", ["load"])) == [
        Launch("load", 2, False)
    ]
    assert run.handle(Finished("load", True)) == [
        Reuse("report", replay["report"]),
        Launch("train", 2, False),
    ]
    reasons = {c.invocation_id: c.reason for c in run.commands if isinstance(c, Missed)}
    assert reasons == {
        "load": "its result was invalidated since it ran (branchwork cache invalidate)",
        "train": "it comes after 'load', which ran again, and its inputs differ",
    }


def test_a_resumed_call_made_after_reading_an_invalidated_value_runs_again_where_it_differs():
    replay = {
        "load": Attempt("load", "code", "k-load", "completed", 1, invalidated=True),
        "train": Attempt("train", "code", "k-train-before", "completed", 1),
    }
    run = engine(check=GraphCheck("r", replay), keys={"load": "k-load", "train": "k-train"})
    run.handle(add("load"))
    run.handle(Finished("load", True))
    reading = add("train")._replace(reads=("load",))  # its argument is load's value
    assert run.handle(reading) == [Launch("train", 2, False)]


def test_after_an_invalidated_value_was_read_changed_code_still_diverges():
    """Only inputs may differ after a value that ran again: `train`'s code changed."""
    replay = {
        "load": Attempt("load", "code", "k-load", "completed", 1, invalidated=True),
        "train": Attempt("train", "old-code", "k-train-before", "completed", 1),
    }
    run = engine(check=GraphCheck("r", replay), keys={"load": "k-load", "train": "k-train"})
    run.handle(add("load"))
    run.handle(Finished("load", True))
    commands = run.handle(add("train")._replace(reads=("load",)))
    (diverged,) = [c for c in commands if isinstance(c, Diverged)]
    assert "runs step 'train' whose code changed since it ran" in diverged.message


def test_what_comes_after_an_invocation_whose_key_cannot_be_computed_may_differ():
    """`read` runs again unchecked (its file is unreadable now): `parse`, after it, runs
    again with its new input instead of diverging."""
    replay = {
        "read": Attempt("read", "code", "k-read", "completed", 1),
        "parse": Attempt("parse", "code", "k-parse-before", "completed", 1),
    }
    run = engine(check=GraphCheck("r", replay), keys={"read": None, "parse": "k-parse"})
    assert run.handle(add("read"), add("parse", ["read"])) == [Launch("read", 2, False)]
    assert run.handle(Finished("read", True)) == [Launch("parse", 2, False)]


def test_a_resumed_invocation_whose_key_cannot_be_computed_runs_as_its_next_attempt():
    """Its input file cannot be read now: nothing to compare with its record, so it runs
    again, as attempt 2 (as attempt 1, its step run was not recorded: the first one is)."""
    replay = {"read": Attempt("read", "code", "k-read", "completed", 1)}
    run = engine(check=GraphCheck("r", replay), keys={"read": None})
    assert run.handle(add("read")) == [Launch("read", 2, False)]


def test_a_resume_that_accepts_the_new_graph_runs_it():
    replay = {"load": Attempt("load", "old-code", "k-load", "completed", 1)}
    run = engine(check=GraphCheck("r", replay, accept_new_graph=True), keys={"load": "k-load"})
    assert run.handle(add("load")) == [Launch("load", 2, False)]
