"""Checking a resumed run's invocations against what its earlier sessions recorded.

Completed invocations are reused by id. An invocation id that now names another step, runs
changed code or gets other inputs stops the resumed run with `ReplayDivergenceError`, unless
the resume accepts the new graph. A fresh run is never checked against earlier runs: where
it differs, its steps simply miss the cache (and the cache reason says what changed).

A completed invocation whose result was invalidated since (`branchwork cache invalidate`)
runs again, as a replay's does, and so does one whose key cannot be computed now. Its new
result may differ, so the invocations that come after it through data, and every call made
once the body read its value, run again where their inputs now differ instead of diverging
(changed code, or another step under the id, still diverges).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

from branchwork.graph.cache_key import same_key_format
from branchwork.graph.cache_reasons import RESUMED

_REUSABLE = ("completed", "cached")
INVALIDATED_SINCE = "its result was invalidated since it ran (branchwork cache invalidate)"


class Recorded(Protocol):
    """What graph checks compare: a step run or a lighter record of one."""

    @property
    def step_name(self) -> str: ...

    @property
    def code_hash(self) -> str: ...

    @property
    def cache_key(self) -> str | None: ...


class Attempt(Recorded, Protocol):
    """A recorded attempt of a resumed run (a step run)."""

    @property
    def status(self) -> str: ...

    @property
    def attempt(self) -> int: ...

    @property
    def invalidated(self) -> bool: ...


class Call(NamedTuple):
    """The invocation the pipeline makes now, as graph checks see it: with the invocations
    it comes after through data, `after=` and `start_after=` (the values the body read
    before the call, the check was told of as calls were made: `GraphCheck.made`)."""

    invocation_id: str
    step_name: str
    code_hash: str
    key: str
    upstream: tuple[str, ...] = ()


class Verdict(NamedTuple):
    """What to do with one invocation: reuse a record, serve it like a cache hit (from
    another run: a replay's original), stop, or run (as attempt n+1) for the cache verdict
    `missed`, with its `reason` if the check gives one."""

    reuse: Any = None  # the Attempt to take over
    divergence: str | None = None
    attempts_before: int = 0
    cached: Any = None  # a `metadata.queries.CacheHit` to serve it from
    missed: str = RESUMED
    reason: str | None = None


RUN = Verdict()  # nothing recorded says otherwise: run it
DIVERGED_ADVICE = "Resume with accept_new_graph=True to run the new graph instead."


class GraphCheck:
    """Pure: compares calls with records given at construction, as the engine asks."""

    def __init__(
        self,
        run_name: str,
        replay: Mapping[str, Attempt] | None = None,
        accept_new_graph: bool = False,
    ) -> None:
        self.run_name = run_name
        self.replay = replay or {}
        self.accept_new_graph = accept_new_graph
        self._ran_again: set[str] = set()  # recorded completed, run again (module docstring)
        self._read_ran_again: str | None = None  # the first of them whose value the body read
        # recorded unfinished (failed, stopped), not made again yet: see `left_behind`
        self._not_made = {i for i, record in self.replay.items() if record.status not in _REUSABLE}

    def is_replayed(self, invocation_id: str) -> bool:
        return invocation_id in self.replay

    def unchecked(self, invocation_id: str) -> int:
        """An invocation whose key cannot be computed runs again, unchecked: the attempts
        the run's earlier sessions recorded for it (it runs as the next one). What comes
        after a completed one may now differ, as after an invalidated one."""
        record = self.replay.get(invocation_id)
        if record is None:
            return 0
        if record.status in _REUSABLE:
            self._ran_again.add(invocation_id)
        return record.attempt

    def made(self, invocation_id: str, reads: tuple[str, ...]) -> None:
        """The pipeline made a call, after reading these values since its previous one."""
        self._not_made.discard(invocation_id)
        if self._read_ran_again is None:
            self._read_ran_again = next((read for read in reads if read in self._ran_again), None)

    def left_behind(self) -> tuple[str, str] | None:
        """Once the body returned: an invocation the run's earlier sessions left failed or
        stopped that it no longer makes, with the divergence message, unless the resume
        accepts the new graph. Such a run was recorded completed around its failed step."""
        if not self._not_made or self.accept_new_graph:
            return None
        first = min(self._not_made)
        status = self.replay[first].status
        return first, (
            f"Resumed run '{self.run_name}': invocation '{first}' {status} in an earlier "
            f"session, and the pipeline no longer calls it"
            + (f" (nor {len(self._not_made) - 1} more such)" if len(self._not_made) > 1 else "")
            + ". Resume with accept_new_graph=True to finish the run without it."
        )

    def check(self, call: Call) -> Verdict:
        record = self.replay.get(call.invocation_id)
        return RUN if record is None else self._resumed(call, record)

    def _resumed(self, call: Call, record: Attempt) -> Verdict:
        # a record keyed in an older format cannot be checked: it runs again
        if record.status not in _REUSABLE or not same_key_format(record.cache_key, call.key):
            return Verdict(attempts_before=record.attempt)
        if record.invalidated:
            self._ran_again.add(call.invocation_id)
            return Verdict(attempts_before=record.attempt, reason=INVALIDATED_SINCE)
        difference = difference_from(record, call.step_name, call.code_hash, call.key)
        if difference is None:
            return Verdict(reuse=record, attempts_before=record.attempt)
        same_code = (record.step_name, record.code_hash) == (call.step_name, call.code_hash)
        after = next((i for i in call.upstream if i in self._ran_again), self._read_ran_again)
        if same_code and after is not None:  # only its inputs differ, as they may now
            self._ran_again.add(call.invocation_id)
            reason = f"it comes after '{after}', which ran again, and its inputs differ"
            return Verdict(attempts_before=record.attempt, reason=reason)
        if self.accept_new_graph:
            reason = f"the resume accepts the new graph, and it {difference}"
            return Verdict(attempts_before=record.attempt, reason=reason)
        return Verdict(  # the loop adds what differs, then DIVERGED_ADVICE
            divergence=f"Resumed run '{self.run_name}': invocation '{call.invocation_id}' "
            f"{difference}.",
            attempts_before=record.attempt,
        )


def difference_from(record: Recorded, step_name: str, code_hash: str, key: str) -> str | None:
    """How a recorded invocation differs from the one the pipeline now makes, if it does."""
    if record.step_name != step_name:
        return f"now names step '{step_name}', but ran step '{record.step_name}'"
    if record.code_hash != code_hash:
        return f"runs step '{step_name}' whose code changed since it ran"
    if record.cache_key != key:
        return f"calls step '{step_name}' with different inputs than it did"
    return None
