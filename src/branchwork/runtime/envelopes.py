"""The flat, versioned, JSON envelopes that carry a step to another process and back.

A step process needs no metadata-store credentials: the request says where the inputs are
(artifact URIs), which step to run (a cloudpickle of the `Step`, which pickles importable
functions by reference and `__main__`/local ones by value) and where to put outputs. The
result says where the outputs went, or what went wrong. The loop records both.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import sys
import types
from collections.abc import Iterator, Mapping
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

from branchwork.artifact_stores import artifact_store_from_spec
from branchwork.graph.code_hash import changed_parts, fingerprint
from branchwork.materializers.cloudpickle_materializer import loads
from branchwork.metadata import error_records
from branchwork.runtime.process_logging import applied, current_setup
from branchwork.runtime.step_execution import ArtifactInput, StepRequest, StepResult, StoredArtifact
from branchwork.user_code import (
    SCRIPT_MODULE,
    ImportStopped,
    code_generation,
    find_recorded,
    importing_user_code,
    recorded_module,
)
from branchwork.values import Leaf, decode, encode, hash_json

if TYPE_CHECKING:
    from branchwork.steps.step import Step

# 2: inputs in the `branchwork.values` encoding; 3: the artifact store's spec; 4: inline data;
# 5: an inline artifact's location is "" (its URI is derived from its content hash); 6: the
# digest of the step's comparable code fingerprint parts where it was keyed; 7: the file of
# the step's code (`_named_after`); 8: the loop's logging levels and warnings filters
VERSION = 8
DYNAMIC_CODE = "<dynamic-code>"  # the file cloudpickle names the code it pickles by value


def _pickle(obj: Any) -> str:
    import cloudpickle

    return base64.b64encode(cloudpickle.dumps(obj)).decode()


@functools.lru_cache(maxsize=256)
def _pickled_step(step: Any, generation: tuple[int, int]) -> str:
    """A step pickles the same every time: once per step, not once per launch; and again
    after a notebook cell ran or a new run started (`generation`): a cell may have redefined
    what it calls, a script set a global it reads (pickled by value for a `__main__` step)."""
    return _pickle(step)


def _unpickle(text: str) -> Any:
    """A step, or a step's exception: this process's live classes kept as they are (an
    exception of the script's class, pickled where it ran, rewrote the class here)."""
    return loads(base64.b64decode(text))


@functools.lru_cache(maxsize=64)
def _unpickled_step(text: str, code_file: str | None) -> Any:
    """A step unpickled once per pickle in a process that runs many (a Ray worker), rather
    than once per request; its code named after `code_file` again (`_named_after`)."""
    step = _unpickle(text)
    if code_file is not None and isinstance(step.func, types.FunctionType):
        _named_after(step.func, code_file)
    return step


def _named_after(func: types.FunctionType, path: str) -> None:
    """cloudpickle names the code of a function it pickles by value (a script's step) as
    from DYNAMIC_CODE: a step's traceback then said `File "<dynamic-code>", line 9` with no
    line. Name it, its nested functions' and lambdas', and that of the functions of its
    module that travelled with it, after the file it came from."""
    module = func.__module__
    related = [
        value
        for value in func.__globals__.values()
        if isinstance(value, types.FunctionType) and value.__module__ == module
    ]
    for function in (func, *related):
        if function.__code__.co_filename == DYNAMIC_CODE:
            function.__code__ = _renamed(function.__code__, path)


def _renamed(code: types.CodeType, path: str) -> types.CodeType:
    consts = tuple(
        _renamed(const, path) if isinstance(const, types.CodeType) else const
        for const in code.co_consts
    )
    return code.replace(co_filename=path, co_consts=consts)


def _code_file(step: Any) -> str | None:
    """Where the step's function was defined, for `_named_after` in the step's process."""
    code = getattr(step.func, "__code__", None)
    return code.co_filename if code is not None and code.co_filename != DYNAMIC_CODE else None


_INLINE = StoredArtifact._fields.index("inline")


def _artifact_to_json(stored: StoredArtifact) -> list[Any]:
    """As JSON: its fields in order, an inline artifact's data in base64."""
    fields: list[Any] = list(stored)
    if stored.inline is not None:
        fields[_INLINE] = base64.b64encode(stored.inline).decode()
    return fields


def _artifact_from_json(data: list[Any]) -> StoredArtifact:
    fields = list(data)
    if fields[_INLINE] is not None:
        fields[_INLINE] = base64.b64decode(fields[_INLINE])
    return StoredArtifact._make(fields)


_ARTIFACTS = Leaf(
    "$artifact",
    ArtifactInput,
    lambda leaf: {
        "$artifact": _artifact_to_json(leaf.artifact),
        "item": leaf.item,
        "stop": leaf.stop,
    },
    lambda data: ArtifactInput(_artifact_from_json(data["$artifact"]), data["item"], data["stop"]),
)


def request_to_json(request: StepRequest) -> str:
    return json.dumps(
        {
            "version": VERSION,
            "run_id": request.run_id,
            "run_name": request.run_name,
            "pipeline_name": request.pipeline_name,
            "invocation_id": request.invocation_id,
            "step_run_id": request.step_run_id,
            "attempt": request.attempt,
            "step": _pickled_step(request.step, code_generation()),
            "code_file": _code_file(request.step),
            "code": _keyed_code(request.step, code_generation()),
            "inputs": encode(request.inputs, _ARTIFACTS),
            "artifact_store": request.artifact_store.spec(),
            "logging": current_setup(),
        }
    )


def request_step(text: str) -> str:
    """The step a request envelope carries, pickled: the same text for the same step each
    time it runs (see `request_from_json`'s `steps`)."""
    return str(json.loads(text)["step"])


def request_from_json(text: str, steps: Mapping[str, Step[Any, Any]] | None = None) -> StepRequest:
    """`steps`: steps already unpickled, by their pickled text (`request_step`): the
    zygote's, which its children inherit rather than unpickle each their own."""
    data = json.loads(text)
    if data.get("version") != VERSION:
        raise ValueError(f"step request envelope version {data.get('version')!r} is not {VERSION}")
    return StepRequest(
        run_id=data["run_id"],
        run_name=data["run_name"],
        pipeline_name=data["pipeline_name"],
        invocation_id=data["invocation_id"],
        step_run_id=data["step_run_id"],
        attempt=data["attempt"],
        step=(steps or {}).get(data["step"]) or _unpickled_step(data["step"], data["code_file"]),
        inputs=decode(data["inputs"], _ARTIFACTS),
        artifact_store=artifact_store_from_spec(data["artifact_store"]),
        keyed_code=data["code"],
        process_logging=data["logging"],
    )


def result_to_json(result: StepResult) -> str:
    error = None
    if result.error is not None:
        try:
            pickled: str | None = _pickle(result.error)
        except Exception:  # an exception that cannot be pickled still reports its text
            pickled = None
        error = {
            "type": error_records.type_name_of(result.error),
            "message": error_records.message_of(result.error),
            "pickle": pickled,
            "data": error_records.encode(result.error),
        }
    return json.dumps(
        {
            "version": VERSION,
            "invocation_id": result.invocation_id,
            "step_run_id": result.step_run_id,
            "attempt": result.attempt,
            "start_time": result.start_time,
            "end_time": result.end_time,
            "outputs": {name: _artifact_to_json(s) for name, s in result.outputs.items()},
            "error": error,
            "traceback": result.traceback,
            "metadata": result.metadata,
            "artifact_metadata": result.artifact_metadata,
            "logs": result.logs,
            "code_seen": result.code_seen,
        },
        default=repr,
    )


def result_from_json(text: str) -> StepResult:
    data = json.loads(text)
    error = data["error"]
    exception: BaseException | None = None
    if error is not None:
        why = "it could not be pickled"
        try:
            exception = _unpickle(error["pickle"]) if error["pickle"] else None
        except Exception as unpickling:
            exception, why = None, f"unpickling it raised {type(unpickling).__name__}: {unpickling}"
        if exception is None:
            exception = error_records.RemoteStepError(
                error["type"], error["message"], data["traceback"], why, error.get("data")
            )
    return StepResult(
        invocation_id=data["invocation_id"],
        step_run_id=data["step_run_id"],
        attempt=data["attempt"],
        start_time=data["start_time"],
        end_time=data["end_time"],
        outputs={name: _artifact_from_json(s) for name, s in data["outputs"].items()},
        error=exception,
        traceback=data["traceback"],
        metadata=data["metadata"],
        artifact_metadata=data.get("artifact_metadata", {}),
        logs=data.get("logs", ""),
        code_seen=data["code_seen"],
    )


def run_envelope(request: str | StepRequest) -> str:
    """Run the step a request envelope (or the request it decodes to) describes; returns the
    result envelope."""
    from branchwork.runtime.step_execution import execute_step

    if isinstance(request, str):
        request = request_from_json(request)
    seen = _code_seen(request)  # before the step runs: it may change a global
    setup = request.process_logging
    with _as_script_module(request.step.func), applied(setup) if setup else nullcontext():
        result = execute_step(request)
    result.code_seen = seen
    return result_to_json(result)


@contextlib.contextmanager
def _as_script_module(func: Any) -> Iterator[None]:
    """While a script's step runs where the script is not loaded (a zygote's child, a Ray
    worker), the functions and classes it travelled with are the module `SCRIPT_MODULE`:
    what the step pickles by reference (a multiprocessing pool handed one of the script's
    functions) is found there. Only for the step's run: a Ray worker runs other scripts'
    steps next."""
    module_name = getattr(func, "__module__", None)
    if module_name != SCRIPT_MODULE or SCRIPT_MODULE in sys.modules:
        yield
        return
    module = types.ModuleType(SCRIPT_MODULE)
    module.__dict__.update(func.__globals__)
    sys.modules[SCRIPT_MODULE] = module
    try:
        yield
    finally:
        sys.modules.pop(SCRIPT_MODULE, None)


def _code_seen(request: StepRequest) -> dict[str, str] | None:
    """The step's comparable fingerprint parts as this process's modules define it, when
    they are not what the loop keyed it with (`code_differences` names them there); None
    when they are, or for a step this process cannot look up by name (one made in a
    function, a command step)."""
    if request.keyed_code is None:
        return None
    func = _module_function(request.step.func)
    return None if func is None else _seen(func, request.keyed_code, code_generation())


def _module_function(func: Any) -> types.FunctionType | None:
    """The function as its module defines it here (the step pickles it by value, with the
    module's globals it reads; its helpers are imported afresh with the module). A script's
    is the one it pickled: its own code travelled, but the modules it imports are this
    process's (a helper edited since the loop keyed the step)."""
    if not isinstance(func, types.FunctionType) or "<locals>" in func.__qualname__:
        return None
    module = recorded_module(func.__module__)
    if module == "__main__":
        return func
    try:
        with importing_user_code():  # a pipeline called at the module's top level stops it
            found = find_recorded(module, func.__qualname__)
    except (Exception, ImportStopped):  # noqa: BLE001 - not importable here: nothing to compare
        return None
    own = getattr(found, "func", found)  # the step it decorated, or the function itself
    return own if isinstance(own, types.FunctionType) else None


def fingerprint_here(step: Step[Any, Any]) -> None:
    """Fingerprint the step as this process's modules define it: a zygote does, once, for
    the children it forks."""
    func = _module_function(step.func)
    if func is not None:
        fingerprint(func)


@functools.lru_cache(maxsize=256)
def _seen(
    func: types.FunctionType, keyed: str, generation: tuple[int, int]
) -> dict[str, str] | None:
    here = _comparable(func)
    return None if hash_json(here) == keyed else here


def _comparable(func: Any) -> dict[str, str]:
    """The fingerprint parts of a step's function that a step process compares: all but a
    script's code (`__main__`), which travels by value in the pickle and hashes otherwise
    where its source is missing."""
    return {
        label: digest
        for label, digest in fingerprint(func).parts.items()
        if not label.startswith("__main__:")
    }


@functools.lru_cache(maxsize=256)
def _keyed_code(step: Any, generation: tuple[int, int]) -> str | None:
    """What a step process compares its view of the step's code with (`_code_seen`): once
    per step and run, not once per launch."""
    func = step.func
    return hash_json(_comparable(func)) if isinstance(func, types.FunctionType) else None


def code_differences(step: Step[Any, Any], seen: Mapping[str, str]) -> tuple[str, ...]:
    """The fingerprint parts a step process saw (`StepResult.code_seen`) otherwise than the
    loop: by name, sorted."""
    return tuple(changed_parts(seen, _comparable(step.func)))
