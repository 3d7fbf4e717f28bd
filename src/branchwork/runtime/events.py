"""The scheduling core's vocabulary: the events the loop feeds the engine, and the commands
the engine answers with. Plain immutable values, so a scenario is a list of them."""

from __future__ import annotations

from enum import Enum
from typing import Any, NamedTuple

from branchwork.config.retry import StepRetryConfig


class FailureMode(str, Enum):
    """What a run does when a step fails for good."""

    STOP_ON_FAILURE = "stop_on_failure"
    FAIL_FAST = "fail_fast"
    CONTINUE_ON_FAILURE = "continue_on_failure"


class Request(NamedTuple):
    """Resources one step holds while it runs."""

    cpu: float = 0.0
    memory: int = 0
    gpu: float = 0.0

    def fits(self, free: Request) -> bool:
        return self.cpu <= free.cpu and self.memory <= free.memory and self.gpu <= free.gpu

    def __bool__(self) -> bool:
        return bool(self.cpu or self.memory or self.gpu)


NO_RETRY = StepRetryConfig()


# ---- events: what happened -------------------------------------------------------------------


class Added(NamedTuple):
    """The pipeline made a step call."""

    invocation_id: str
    step_name: str
    code_hash: str
    dependencies: tuple[str, ...]
    request: Request = Request()
    cacheable: bool = False
    retry: StepRetryConfig = NO_RETRY
    expire_after: float | None = None  # seconds a cached result stays usable
    refresh: bool = False  # recompute it, and let the new result replace the cached one
    start_after: tuple[str, ...] = ()  # it starts once these have started
    holds_worker: bool = True  # False: an async step, or a quick one in a Ray batch
    limits: tuple[tuple[str, int], ...] = ()  # (concurrency limit, how many may run at once)
    reads: tuple[str, ...] = ()  # values the body read since its previous call


class KeyComputed(NamedTuple):
    """The loop computed an invocation's cache key (as `ComputeKey` asked; None: it could
    not be) and, if asked to, looked it up: `hit` is what the store holds for it (opaque
    here) or None, `hit_finished` when that result was made (epoch seconds)."""

    invocation_id: str
    key: str | None
    hit: Any = None
    hit_finished: float | None = None


class Finished(NamedTuple):
    """An attempt ended; a failure that another attempt cannot fix is not `retryable`, and
    one that `paused` (its child run waits for an answer) fails nothing else."""

    invocation_id: str
    ok: bool
    retryable: bool = True
    paused: bool = False


class Cancel(NamedTuple):
    """Nothing new may start (the pipeline body failed)."""

    reason_invocation_id: str | None


class Stop(NamedTuple):
    """The run is being stopped: nothing new starts; with `abandon`, the running steps are
    given up too (their results, should they come, are ignored)."""

    abandon: bool


Event = Added | KeyComputed | Finished | Cancel | Stop


# ---- commands: what to do --------------------------------------------------------------------


class ComputeKey(NamedTuple):
    """Its inputs are ready: compute its cache key; with `look_up`, find a cached run."""

    invocation_id: str
    look_up: bool


class Reuse(NamedTuple):
    """Take over what an earlier session of this (resumed) run recorded for it."""

    invocation_id: str
    record: Any


class UseCached(NamedTuple):
    """Serve it from the cache: record it cached, with the hit's outputs."""

    invocation_id: str
    hit: Any


class Missed(NamedTuple):
    """It runs rather than being served from the cache, for this `graph.cache_reasons`
    verdict (miss, off, refresh, expired, key_failed, resumed, replayed), and this reason
    when the engine knows it (else the loop works it out from the verdict)."""

    invocation_id: str
    verdict: str
    reason: str | None = None


class Diverged(NamedTuple):
    """It no longer matches what was recorded for it: it fails with this message."""

    invocation_id: str
    message: str
    record: Any = None  # the recorded attempt it was compared with (opaque here)


class Launch(NamedTuple):
    invocation_id: str
    attempt: int  # counting the attempts of earlier sessions of a resumed run
    oversized: bool


class RetryScheduled(NamedTuple):
    """The attempt that just failed will be followed by `attempt` in `delay` seconds."""

    invocation_id: str
    attempt: int
    delay: float


class GaveUp(NamedTuple):
    """It failed for good."""

    invocation_id: str


class NotRun(NamedTuple):
    """It will never run, because `because_of` failed (None: the run was stopped)."""

    invocation_id: str
    because_of: str | None


class Abandoned(NamedTuple):
    """A running step given up by a stop: record it stopped."""

    invocation_id: str


Command = (
    ComputeKey
    | Reuse
    | UseCached
    | Missed
    | Diverged
    | Launch
    | RetryScheduled
    | GaveUp
    | NotRun
    | Abandoned
)
