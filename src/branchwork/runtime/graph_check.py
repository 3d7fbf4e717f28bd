"""Checking each invocation against what was recorded before.

Two references: the earlier sessions of a resumed run (`replay`: completed invocations are
reused by id), and, for a fresh run, the last completed run of the same pipeline with the same
parameters (a rerun served from the cache must make the same graph). Either way, an invocation
id that now names another step, changed code (on resume) or other inputs stops the run with
`ReplayDivergenceError` — unless the caller accepts the new graph.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol

from branchwork.graph.cache_key import same_key_format

_REUSABLE = ("completed", "cached")


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


class Call(NamedTuple):
    """The invocation the pipeline makes now, as graph checks see it."""

    invocation_id: str
    step_name: str
    code_hash: str
    dependencies: tuple[str, ...]
    key: str


class Verdict(NamedTuple):
    """What to do with one invocation: reuse a record, stop, or run (as attempt n+1)."""

    reuse: Any = None  # the Attempt to take over
    divergence: str | None = None
    attempts_before: int = 0


RUN = Verdict()  # nothing recorded says otherwise: run it


class GraphCheck:
    """Pure: compares calls with records given at construction, as the engine asks."""

    def __init__(
        self,
        run_name: str,
        replay: Mapping[str, Attempt] | None = None,
        reference: tuple[str, Mapping[str, Recorded]] | None = None,
        accept_new_graph: bool = False,
    ) -> None:
        self.run_name = run_name
        self.replay = replay or {}
        self.reference_run: str = reference[0] if reference else ""
        self.reference: Mapping[str, Recorded] = reference[1] if reference else {}
        self.accept_new_graph = accept_new_graph
        self._agreed: set[str] = set()  # invocations found identical to the reference so far

    def is_replayed(self, invocation_id: str) -> bool:
        return invocation_id in self.replay

    def check(self, call: Call) -> Verdict:
        record = self.replay.get(call.invocation_id)
        if record is not None:
            return self._resumed(call, record)
        return self._rerun(call)

    def _resumed(self, call: Call, record: Attempt) -> Verdict:
        # a record keyed in an older format cannot be checked: it runs again
        if record.status not in _REUSABLE or not same_key_format(record.cache_key, call.key):
            return Verdict(attempts_before=record.attempt)
        difference = _difference(record, call.step_name, call.code_hash, call.key)
        if difference is None:
            return Verdict(reuse=record, attempts_before=record.attempt)
        if self.accept_new_graph:
            return Verdict(attempts_before=record.attempt)
        return Verdict(
            divergence=f"Resumed run '{self.run_name}': invocation '{call.invocation_id}' "
            f"{difference}. Resume with accept_new_graph=True to run the new graph instead.",
            attempts_before=record.attempt,
        )

    def _rerun(self, call: Call) -> Verdict:
        """Only where everything upstream was identical to the reference run: an edited step
        upstream legitimately changes what follows."""
        record = self.reference.get(call.invocation_id)
        if record is None or self.accept_new_graph:
            return RUN
        if not all(d in self._agreed for d in call.dependencies):
            return RUN
        difference = None
        if record.step_name != call.step_name:
            difference = f"now names step '{call.step_name}', but named step '{record.step_name}'"
        elif (
            record.code_hash == call.code_hash
            and record.cache_key != call.key
            and same_key_format(record.cache_key, call.key)  # else a miss, not a divergence
        ):
            difference = f"calls step '{call.step_name}' with different inputs than it did"
        if difference is None:
            if record.cache_key == call.key:
                self._agreed.add(call.invocation_id)
            return RUN
        return Verdict(
            divergence=f"Run '{self.run_name}': invocation '{call.invocation_id}' {difference} in "
            f"run '{self.reference_run}' of the same pipeline with the same parameters. Reruns "
            "must produce the same graph for the same inputs (keep randomness and outside "
            "state out of the pipeline body), or run with_options(accept_new_graph=True)."
        )


def _difference(record: Recorded, step_name: str, code_hash: str, key: str) -> str | None:
    """How a recorded invocation differs from the one the pipeline now makes, if it does."""
    if record.step_name != step_name:
        return f"now names step '{step_name}', but ran step '{record.step_name}'"
    if record.code_hash != code_hash:
        return f"runs step '{step_name}' whose code changed since it ran"
    if record.cache_key != key:
        return f"calls step '{step_name}' with different inputs than it did"
    return None
