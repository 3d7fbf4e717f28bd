"""Running one step: load its inputs by reference, call it, store its outputs.

`StepRequest` is everything a launcher needs (the orchestration loop builds it), and
`StepResult` everything the loop records afterwards; step code never touches the metadata
store. The same code serves inline threads, isolated processes and `async def` steps: an
attempt is one coroutine, `run_step`, which suspends only where an async step's function
awaits. The inline launcher awaits it on its event loop, so thousands of async steps wait on
I/O at once without a thread each; `execute_step` runs it to the end without an event loop
for a sync step, and with one of its own (`asyncio.run`) for an async step in an isolated
process or a Ray task. Inputs are loaded and outputs stored on the thread that runs the
attempt, except an async step's: its outputs (unless small), and inputs not kept inline, go
to a few threads kept for that (`_io`), so the other async steps awaiting on the same event
loop are not held while a big artifact is read or written.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import itertools
import numbers
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from types import GenericAlias
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from branchwork.artifact_stores.inline import inline_uri
from branchwork.exceptions import ArtifactError, RunPaused, StepFailedError
from branchwork.materializers.dataclass_materializer import MissingClassError
from branchwork.materializers.io import load_artifact, save_artifact
from branchwork.materializers.registry import materializer_for, materializer_path
from branchwork.materializers.types import resolve_type, type_path
from branchwork.metadata.error_records import text_of
from branchwork.runtime.hooks import call_hook
from branchwork.runtime.step_logs import capture_step_logs
from branchwork.steps.context import StepContext, reset_step_context, set_step_context
from branchwork.values import leaves_of, tree_map

if TYPE_CHECKING:
    from branchwork.artifact_stores.base import BaseArtifactStore
    from branchwork.steps.step import Step

T = TypeVar("T")


class StoredArtifact(NamedTuple):
    """Where and how one output was stored. Made with `at`: the URI of an inline artifact
    is `inline://<content hash>`, not kept a second time (a run holds one per output that a
    future or a later call still needs: a million, in a million-step fan-out)."""

    location: str  # the URI of an artifact in the artifact store; "" for an inline one
    materializer: str
    data_type: str
    content_hash: str
    preview: str | None = None  # JSON (see materializers.preview); None for older records
    item_count: int | None = None  # what `step.map` fans out over; None: not known
    inline: bytes | None = None  # the data of an inline artifact (see artifact_stores.inline)
    version_id: str = ""  # its artifact version, once recorded (the loop's, for later steps)

    @classmethod
    def at(
        cls,
        uri: str,
        materializer: str,
        data_type: str,
        content_hash: str,
        preview: str | None = None,
        item_count: int | None = None,
        inline: bytes | None = None,
        version_id: str = "",
    ) -> StoredArtifact:
        location = "" if inline is not None else uri
        return cls(
            location, materializer, data_type, content_hash, preview, item_count, inline, version_id
        )

    @property
    def uri(self) -> str:
        return self.location or inline_uri(self.content_hash)


class ArtifactInput(NamedTuple):
    """An input leaf: the stored artifact to load (item `item` of it, if mapped; items
    `item` to `stop` if mapped in chunks)."""

    artifact: StoredArtifact
    item: int | None = None
    stop: int | None = None


@dataclass(slots=True)
class StepRequest:
    run_id: str
    run_name: str
    pipeline_name: str
    invocation_id: str
    step_run_id: str
    attempt: int
    step: Step[Any, Any]
    inputs: dict[str, Any]
    artifact_store: BaseArtifactStore
    # A digest of the step's code as the loop keyed it, for a step carried to another
    # process (`runtime.envelopes`), which checks it sees the same.
    keyed_code: str | None = None
    # The loop's process's logging levels and warnings filters, for a step carried to another
    # process (`runtime.process_logging`).
    process_logging: dict[str, Any] | None = None


@dataclass(slots=True)
class StepResult:
    invocation_id: str
    step_run_id: str
    attempt: int
    start_time: float
    end_time: float
    outputs: dict[str, StoredArtifact] = field(default_factory=dict)
    error: BaseException | None = None
    traceback: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    artifact_metadata: dict[str, dict[str, Any]] = field(default_factory=dict)  # by output
    logs: str = ""
    retryable: bool = True  # False when another attempt cannot fare better (a refusal)
    # The step's code fingerprint parts where it ran, when not those it was keyed with
    code_seen: dict[str, str] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def load_input(leaf: ArtifactInput, script_classes: Mapping[str, type] | None = None) -> Any:
    """A value inside a run: a pickle loads (see `pickle_policy`), checked against its hash.
    `script_classes`: the consuming step's (`Step.script_classes`), for a class of the
    script that this process cannot import."""
    artifact = leaf.artifact
    data_type = resolve_type(artifact.data_type)
    if data_type is Any and script_classes:
        data_type = script_classes.get(artifact.data_type, Any)
    try:
        return load_artifact(
            artifact.uri,
            artifact.materializer,
            data_type,
            content_hash=artifact.content_hash,
            allow_pickle=True,
            item=leaf.item,
            stop=leaf.stop,
            inline=artifact.inline,
        )
    except MissingClassError as error:
        if not artifact.data_type.startswith("__main__."):
            raise
        name = artifact.data_type.removeprefix("__main__.")
        raise MissingClassError(
            f"An input holds a {error.kind} of class {name}, defined in the script that ran "
            "the pipeline, as JSON, and the class is not found in this process (a step that "
            "runs in a process of its own, isolated or on Ray, cannot import the script): "
            f"annotate the step's parameter with {name} (a step brings the classes its "
            f"annotations name), or define {name} in a module the script imports."
        ) from None


async def _io(in_thread: bool, func: Callable[..., T], *args: Any) -> T:
    """Artifact I/O: for an async step in one of a few threads kept for it (see the module
    docstring), right here for a sync one (which has a thread, or a process, of its own).
    Not the event loop's default executor: users' `asyncio.to_thread` calls share that, and
    its threads are joined at exit, so an abandoned step's write would keep the process
    alive."""
    if not in_thread:
        return func(*args)
    event_loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = event_loop.create_future()
    context = contextvars.copy_context()  # the step's context and log buffer

    def work() -> None:
        try:
            value, error = context.run(func, *args), None
        except BaseException as raised:  # noqa: BLE001 - raised in the step's coroutine
            value, error = None, raised
            if isinstance(raised, StopIteration):  # a future refuses it
                error = RuntimeError(f"{raised!r} escaped while storing or loading")
                error.__cause__ = raised
        with contextlib.suppress(RuntimeError):  # the event loop is closed: nobody waits
            event_loop.call_soon_threadsafe(_settle, done, value, error)

    _io_threads.submit(work)
    return await done


class _IOThreads:
    """At most `size` daemon threads for async steps' artifact I/O, started as needed, and
    again in a forked child (threads do not survive a fork)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._pid = 0
        self._started = 0
        self._work: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()

    def submit(self, work: Callable[[], None]) -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._pid, self._started, self._work = os.getpid(), 0, queue.SimpleQueue()
            if self._started < self.size:
                self._started += 1
                threading.Thread(
                    target=_serve, args=(self._work,), name="branchwork-artifact-io", daemon=True
                ).start()
            self._work.put(work)


def _serve(work: queue.SimpleQueue[Callable[[], None]]) -> None:
    while True:
        work.get()()


_io_threads = _IOThreads(8)
_SCALARS = (bool, int, float, type(None))


def _small(value: Any, longest: int = 128, items: int = 8) -> bool:
    """Whether a value is stored inline by the built-in materializer whatever it holds (a
    number, a string of at most 128 characters, at most 8 numbers or strings of at most 8
    characters in a list, tuple or dict): faster than a thread hop (0.2-0.4 ms of CPU)."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind in (str, bytes):
        return len(value) <= longest
    if kind not in (list, tuple, dict) or items == 0 or len(value) > items:
        return False
    leaves = itertools.chain.from_iterable(value.items()) if kind is dict else value
    return all(_small(leaf, longest=8, items=0) for leaf in leaves)


def _settle(done: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if done.cancelled():  # the step was cancelled meanwhile
        return
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(value)


def _reads_files(inputs: dict[str, Any]) -> bool:
    """Whether an input is stored in the artifact store: one kept inline in the metadata
    store is small, and loads faster than a thread hop."""
    return any(leaf.artifact.inline is None for _, leaf in leaves_of(inputs, ArtifactInput))


def _split_outputs(step: Step[Any, Any], invocation_id: str, value: Any) -> dict[str, Any]:
    specs = step.outputs
    if len(specs) == 0:
        if value is not None:  # it was dropped without a word
            raise StepFailedError(
                f"Step '{step.name}' (invocation '{invocation_id}') is annotated `-> None` "
                f"but returned {type(value).__name__}: annotate what it returns to keep it "
                "as an output, or return nothing.",
                invocation_id,
            )
        return {}
    if len(specs) == 1:
        return {specs[0].name: value}
    if not isinstance(value, (tuple, list)) or len(value) != len(specs):
        got = f"{len(value)} values" if isinstance(value, (tuple, list)) else type(value).__name__
        raise StepFailedError(
            f"Step '{step.name}' (invocation '{invocation_id}') declares {len(specs)} outputs "
            f"({', '.join(s.name for s in specs)}) but returned {got}.",
            invocation_id,
        )
    return {spec.name: item for spec, item in zip(specs, value)}


def _typed_outputs(
    step: Step[Any, Any], invocation_id: str, values: dict[str, Any]
) -> dict[str, Any]:
    """Each output as its annotation when that is a plain class (see `_as_annotated`);
    anything else (Any, unions, generics like list[int]) is not checked."""
    typed = dict(values)
    for spec in step.outputs:
        expected = spec.annotation
        # list[int] is a type on Python 3.10, Any one on 3.11+
        plain_class = isinstance(expected, type) and not isinstance(expected, GenericAlias)
        if not plain_class or expected in (object, Any):
            continue
        value = values[spec.name]
        typed[spec.name] = _as_annotated(expected, value)
        if typed[spec.name] is _MISMATCH:
            raise StepFailedError(
                f"Step '{step.name}' (invocation '{invocation_id}'): output '{spec.name}' is "
                f"annotated {expected.__name__} but the step returned a {type(value).__name__} "
                f"({value!r:.60}).",
                invocation_id,
            )
    return typed


_MISMATCH: Any = object()


def _is_boolean(value: Any) -> bool:
    """bool or numpy.bool_ (no bool subclass; its dtype says it, without importing numpy)."""
    return isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", None) == "b"


# What counts as an int, a float, a bool in every practical sense: numpy scalars, Fraction.
# A bool (or numpy.bool_) is refused for float: float(True) would hide the bug.
_NUMBER_RULES: dict[type, Callable[[Any], bool]] = {
    int: lambda value: isinstance(value, numbers.Integral),
    float: lambda value: isinstance(value, numbers.Real) and not _is_boolean(value),
    bool: _is_boolean,
}


def _as_annotated(expected: type, value: Any) -> Any:
    """`value` as an output annotated `expected`, or _MISMATCH.

    An instance is kept as it is (an IntEnum), except numpy scalars (they have a dtype) and a
    bool for int (it would load back as True, and a command line would read "True"): a number
    that counts as `expected` is converted to it, so what is stored and loaded back is a plain
    int, float or bool."""
    rule = _NUMBER_RULES.get(expected)
    plain = not hasattr(value, "dtype") and not (expected is int and isinstance(value, bool))
    if isinstance(value, expected) and (rule is None or plain):
        return value
    if rule is not None and rule(value):
        return expected(value)
    return _MISMATCH


def _store_outputs(request: StepRequest, values: dict[str, Any]) -> dict[str, StoredArtifact]:
    stored: dict[str, StoredArtifact] = {}
    specs = {spec.name: spec for spec in request.step.outputs}
    store = request.artifact_store
    for name, value in values.items():
        spec = specs[name]
        materializer = spec.materializer or materializer_for(spec.annotation, value)
        uri = store.new_artifact_uri(f"{request.step.name}/{name}")
        try:
            saved = save_artifact(value, uri, store, materializer, allow_inline=True)
        except ArtifactError as error:
            raise ArtifactError(
                f"Step '{request.step.name}' (invocation '{request.invocation_id}'), output "
                f"'{name}': {error}"
            ) from error.__cause__
        stored[name] = StoredArtifact.at(
            saved.uri,
            materializer_path(materializer),
            type_path(value),
            saved.content_hash,
            saved.preview,
            saved.item_count,
            saved.inline,
        )
    return stored


def execute_step(request: StepRequest) -> StepResult:
    """Run one attempt of one step; every failure is returned, never raised (`sys.exit()`
    and KeyboardInterrupt in the step too)."""
    if request.step.is_async:
        import asyncio

        return asyncio.run(run_step(request))
    return _without_loop(run_step(request))


def failed(
    request: StepRequest,
    start: float,
    error: BaseException,
    traceback: str | None = None,
    retryable: bool = True,
) -> StepResult:
    """The result of an attempt begun at `start` that failed, ending now, with no result of
    its own: its process died, it could not be sent, or it was stopped."""
    return StepResult(
        request.invocation_id,
        request.step_run_id,
        request.attempt,
        start,
        time.time(),
        error=error,
        traceback=traceback,
        retryable=retryable,
    )


def not_sent(request: StepRequest, start: float, error: Exception) -> StepResult:
    """The result of an attempt its launcher could not send (the step, a global it reads or
    an input does not pickle; an option the cluster refuses): the step's failure, which
    another attempt would not fix, rather than the loop's crash."""
    message = (
        f"Step '{request.invocation_id}' could not be sent to run: "
        f"{type(error).__name__}: {text_of(error)}"
    )
    failure = StepFailedError(message, request.invocation_id)
    failure.__cause__ = error
    trace = "".join(traceback.format_exception(error))
    return failed(request, start, failure, trace, retryable=False)


def escaped(request: StepRequest, start: float, error: BaseException) -> StepResult:
    """The result of an attempt begun at `start` that ended with no result of its own (a
    KeyboardInterrupt or SystemExit escaped it, or it was cancelled), with its traceback."""
    return failed(request, start, error, "".join(traceback.format_exception(error)))


def _without_loop(attempt: Coroutine[Any, Any, T]) -> T:
    """What a coroutine that never suspends (a sync step's attempt) returns."""
    try:
        attempt.send(None)
    except StopIteration as finished:
        value: T = finished.value
        return value
    attempt.close()
    raise RuntimeError("the attempt of a sync step suspended")  # pragma: no cover


async def run_step(request: StepRequest) -> StepResult:
    """`execute_step` as a coroutine; see the module docstring."""
    start = time.time()
    context = StepContext(
        run_id=request.run_id,
        run_name=request.run_name,
        pipeline_name=request.pipeline_name,
        invocation_id=request.invocation_id,
        step_name=request.step.name,
        step_run_id=request.step_run_id,
        attempt=request.attempt,
        outputs=tuple(spec.name for spec in request.step.outputs),
    )
    result = StepResult(request.invocation_id, request.step_run_id, request.attempt, start, start)
    token = set_step_context(context)
    with capture_step_logs() as logs, context.resources:  # held until outputs are stored
        await _run_attempt(request, result)
    reset_step_context(token)
    result.logs = "".join(logs)
    result.metadata = context.metadata
    result.artifact_metadata = context.artifact_metadata
    result.end_time = time.time()
    return result


async def _run_attempt(request: StepRequest, result: StepResult) -> None:
    is_async = request.step.is_async
    try:
        reads_files = is_async and _reads_files(request.inputs)
        load = functools.partial(load_input, script_classes=request.step.script_classes)
        arguments = await _io(reads_files, tree_map, load, request.inputs, ArtifactInput)
        bound = inspect.BoundArguments(request.step.signature, arguments)
        returned = request.step.func(*bound.args, **bound.kwargs)
        if is_async:
            returned = await returned
        values = _split_outputs(request.step, request.invocation_id, returned)
        values = _typed_outputs(request.step, request.invocation_id, values)
        big = is_async and not (
            all(spec.materializer is None for spec in request.step.outputs)
            and all(_small(value) for value in values.values())
        )
        result.outputs = await _io(big, _store_outputs, request, values)
    except asyncio.CancelledError:  # a stopping run cancelled the async step: not its failure
        raise
    except BaseException as error:  # noqa: BLE001 - reported to the loop, which decides
        # `sys.exit()` and KeyboardInterrupt too: the step's failure, its logs kept with it
        result.error = error
        result.traceback = traceback.format_exc()
        result.retryable = not isinstance(error, RunPaused)  # it waits for a person
        if not isinstance(error, RunPaused):  # `sys.exit()` in the step fails it too
            call_hook(request.step.on_failure, error, f"on_failure of step '{request.step.name}'")
    else:
        call_hook(request.step.on_success, None, f"on_success of step '{request.step.name}'")
