"""The loop's side of the cache: keys from their parts, one lookup per batch, and reasons.

For each invocation whose inputs are ready, the key's parts (`graph.cache_key`) are computed
here — the files it reads hashed, its `cache_key_fn` called, the library versions its
`cache_policy` names looked up — and the store is asked for a result with that key. A key
that cannot be computed is recorded as such (the engine then runs the step: never a hit).
Once the engine has decided, the verdict and its reason (`graph.cache_reasons`) are kept on
the invocation and recorded with the step run it makes, with the parts they came from.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from branchwork.graph import cache_reasons
from branchwork.graph.cache_key import KeyParts, key_of, key_parts
from branchwork.graph.code_hash import class_digest, is_user_module, library_versions
from branchwork.graph.file_input import content_hash
from branchwork.graph.invocation import OutputRef
from branchwork.materializers.types import loaded_type, resolve_type
from branchwork.metadata.error_records import text_of
from branchwork.metadata.queries import CacheHit, EarlierRun, code_fingerprints, find_cached
from branchwork.metadata.recorder import Recorder
from branchwork.runtime import events as E

if TYPE_CHECKING:
    from branchwork.runtime.step_records import Invocations, Tracked

_EPOCH = datetime(1970, 1, 1)  # timestamps in the store are naive UTC


class CacheKeys:
    """Keys, lookups and reasons for the invocations of one run; see the module docstring."""

    def __init__(
        self,
        recorder: Recorder,
        tracked: Invocations,
        previous_run: Callable[[], EarlierRun | None],
        parameters: Mapping[str, Any],
    ) -> None:
        self.recorder = recorder
        self.tracked = tracked
        self._previous_run = previous_run  # read when the first miss needs it: hits never do
        self._parameters = parameters
        self._code_before: dict[str, Mapping[str, str] | None] = {}
        self._code_recorded: set[str] = set()
        self._invalidated: set[str] = set()  # looked-up keys whose results were invalidated
        self._class_codes: dict[str, str | None] = {}  # by data type: see _class_code

    def compute(self, commands: list[E.ComputeKey]) -> list[E.Event]:
        """Every key the commands ask for, and one store query for those to look up."""
        for command in commands:
            self._parts_of(self.tracked[command.invocation_id])
        wanted = [
            key
            for command in commands
            if command.look_up and (key := self.tracked[command.invocation_id].cache_key)
        ]
        lookup = find_cached(self.recorder.engine, wanted)
        self._invalidated |= lookup.invalidated
        hits = lookup.hits
        events: list[E.Event] = []
        for command in commands:
            item = self.tracked[command.invocation_id]
            hit = hits.get(item.cache_key or "") if command.look_up else None
            item.hit = hit
            finished = _epoch(hit.finished) if hit is not None else None
            events.append(E.KeyComputed(command.invocation_id, item.cache_key, hit, finished))
        return events

    def _parts_of(self, item: Tracked) -> None:
        invocation = item.invocation
        step = invocation.step
        try:
            # The step's arguments as bound: literal values as they are, step outputs as
            # references to them (`OutputRef`): their values never come into the loop.
            extra = step.cache_key_fn(dict(invocation.inputs)) if step.cache_key_fn else None
            parts = key_parts(
                invocation,
                self._stored_output,
                content_hash,
                library_versions(step.cache_policy.libraries),
                extra,
                self._class_code,
            )
        except Exception as error:  # noqa: BLE001 - a key that cannot be computed is a miss
            item.key_error = f"{type(error).__name__}: {text_of(error)}"
            item.cache_key = None
            return
        item.cache_parts = parts
        item.cache_parts_json = parts.to_json()
        item.cache_key = key_of(item.cache_parts_json)
        if parts.code not in self._code_recorded:  # what the digest is made of, for reasons
            self._code_recorded.add(parts.code)
            self.recorder.fingerprint(parts.code, step.code_fingerprint.parts)

    def _stored_output(self, ref: OutputRef) -> tuple[str, str]:
        stored = self.tracked.of(ref.invocation_id).outputs[ref.output]
        return stored.content_hash, stored.data_type

    def _class_code(self, data_type: str) -> str | None:
        """The code digest of the user's class `data_type` names, once per run: `score(model)`
        runs `model.predict`, and a changed method served a stale result while `make` stored
        the same bytes. The user's module is imported if it is not loaded yet (its class was
        left out of the key, and a changed method served the stale result when the step that
        made the value was a cache hit); a library's is not (libraries enter by version)."""
        if data_type not in self._class_codes:
            cls = loaded_type(data_type)
            if cls is None and is_user_module(data_type):
                cls = resolve_type(data_type)
            self._class_codes[data_type] = class_digest(cls)
        return self._class_codes[data_type]

    def decided(self, item: Tracked, command: E.Missed | E.UseCached) -> None:
        """Keep the engine's verdict on the invocation, with its reason."""
        if isinstance(command, E.UseCached):
            hit: CacheHit = command.hit
            item.cache_verdict = cache_reasons.HIT
            item.cache_reason = cache_reasons.hit(hit.invocation_id, hit.run_name)
            return
        item.cache_verdict = command.verdict
        item.cache_reason = command.reason or self._reason(item, command.verdict)

    def _reason(self, item: Tracked, verdict: str) -> str:
        step = item.invocation.step
        if verdict == cache_reasons.OFF:
            return step.cache_off_reason
        if verdict == cache_reasons.FAILED:
            return f"its cache key could not be computed: {item.key_error}"
        if verdict == cache_reasons.REFRESH:
            return "refreshed: recomputed on request, replacing the cached result"
        if verdict == cache_reasons.RESUMED:
            return "resumed: it runs again after the attempts of the run's earlier session"
        if verdict == cache_reasons.EXPIRED and item.hit is not None:
            age = timedelta(seconds=round(time.time() - (_epoch(item.hit.finished) or 0)))
            return (
                f"the cached result of run '{item.hit.run_name}' is {age} old, older than "
                f"expire_after ({step.expire_after})"
            )
        assert item.cache_parts is not None
        invocation = item.invocation
        sources = {
            name: _source(value)
            for name, value in invocation.inputs.items()
            if isinstance(value, OutputRef)
        }
        return cache_reasons.miss(
            item.cache_parts,
            step.code_fingerprint.parts,
            self._earlier(invocation.id),
            sources,
            invalidated=item.cache_key in self._invalidated,
        )

    def _earlier(self, invocation_id: str) -> cache_reasons.Earlier | None:
        earlier, parameter_changes = self._previous
        if earlier is None:
            return None
        recorded = earlier.steps.get(invocation_id)
        parts = (
            KeyParts.from_json(json.loads(recorded.parts)) if recorded and recorded.parts else None
        )
        return cache_reasons.Earlier(
            earlier.run_name,
            parts,
            self._code_parts(parts.code) if parts is not None else None,
            parameter_changes,
            recorded.status if recorded else None,
            recorded.invalidated if recorded else False,
        )

    @functools.cached_property
    def _previous(self) -> tuple[EarlierRun | None, list[str]]:
        """The pipeline's previous run, and how its parameters differ from this run's."""
        earlier = self._previous_run()
        if earlier is None:
            return None, []
        return earlier, cache_reasons.parameter_changes(self._parameters, earlier.parameters)

    def _code_parts(self, digest: str) -> Mapping[str, str] | None:
        if digest not in self._code_before:
            found = code_fingerprints(self.recorder.engine, [digest]).get(digest)
            self._code_before[digest] = json.loads(found) if found else None
        return self._code_before[digest]


def _epoch(moment: datetime | None) -> float | None:
    """Epoch seconds of a naive UTC datetime from the store."""
    return None if moment is None else (moment - _EPOCH).total_seconds()


def _source(ref: OutputRef) -> str:
    """What a step output argument is, for a reason: a mapped item is keyed by its place in
    the whole output, so the reason must not say that the item itself changed."""
    output = f"the output of '{ref.invocation_id}'"
    if ref.item is None:
        return output
    items = f"item {ref.item}" if ref.stop is None else f"items {ref.item} to {ref.stop - 1}"
    return f"{items} of {output}, which is keyed by that whole output"
