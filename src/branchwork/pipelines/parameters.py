"""Pipeline parameters checked and converted by the pipeline function's annotations.

An annotation is the parameter's contract, kept before anything runs: `pipe(n="3")` runs with
n=3, `pipe(n="abc")` is refused with one line naming the pipeline, the parameter, the type
and the value. Conversion is pydantic's lax mode ("3" -> 3, 3.0 -> 3, "yes" -> True, list
items converted; 3.5 for an int is refused). pydantic is imported only when a parameter is
annotated, so `import branchwork` stays fast. Unannotated and `Any` parameters, annotations
that cannot be resolved (a name imported only under TYPE_CHECKING) and types pydantic cannot
check are passed as they are.

Parameters are recorded as JSON: a value that is not JSON, or would not read back from JSON as
it is (a tuple, a dict with int keys), is written by its annotation (`Path` as its text, `date`
in ISO format, a pydantic model or dataclass as its fields, `tuple[int, ...]` as a list), or,
unannotated, in the encoding of `branchwork.values` (`{"$tuple": [1, 2]}`), and read back
through it wherever the run's body runs again (a resume, a replay, an orchestration
process): the body always gets what its annotations say.

A `--param KEY=VALUE` of the command line arrives as a `CommandLineValue`, so the annotation
can decide what the text means: a `str` parameter gets exactly what was typed (`name=3` is
"3"); any other gets the JSON the text parses as if its type accepts that, else the text
itself (which lax mode may still convert: `flag=yes` for a bool is True; `n=abc` for an int
fails).
"""

from __future__ import annotations

import contextlib
import functools
import json
import typing
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from branchwork.exceptions import ConfigurationError
from branchwork.values import decode, encode

if TYPE_CHECKING:
    from pydantic import TypeAdapter, ValidationError

_JSON_OPENERS = ("{", "[", '"')  # text that starts so was meant as JSON: say why it is not


@dataclass(frozen=True)
class CommandLineValue:
    """A `--param` value as typed; the parameter's annotation decides what it becomes."""

    text: str


def json_or_text(text: str) -> Any:
    """The JSON `text` parses as (3, true, [1, 2]), else `text` itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def validate_parameters(
    pipeline_name: str, func: Callable[..., Any], values: dict[str, Any]
) -> dict[str, Any]:
    """`values` by parameter name, converted to the types `func` annotates them with.

    Raises ConfigurationError for the first value its annotation refuses."""
    types = _parameter_types(func)
    return {
        name: _validated(pipeline_name, name, types.get(name, Any), value)
        for name, value in values.items()
    }


def recorded_parameters(
    pipeline_name: str, func: Callable[..., Any], values: dict[str, Any]
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """`values` (as `validate_parameters` gave them) as JSON to record, and the names of
    those written by their annotation, which only are read back through it (`read_back`:
    a value validated twice could change). Raises ConfigurationError for one that cannot be
    recorded, or would not read back as it is (a SecretStr is written masked)."""
    types = _parameter_types(func)
    recorded: dict[str, Any] = {}
    typed: list[str] = []
    for name, value in values.items():
        recorded[name] = value
        if _reads_back(value):
            continue
        adapter = _adapter(types.get(name, Any))
        if adapter is None:
            recorded[name] = _encoded(pipeline_name, name, value)
            continue
        written = adapter.dump_python(value, mode="json", by_alias=True, warnings=False)
        if not _is_json(written) or _read_through(adapter, written) != value:
            raise _not_recordable(pipeline_name, name, value, " (it would not read back as it is)")
        recorded[name] = written
        typed.append(name)
    return recorded, tuple(typed)


def _not_recordable(pipeline_name: str, name: str, value: Any, why: str) -> ConfigurationError:
    return ConfigurationError(
        f"Pipeline '{pipeline_name}': parameter '{name}' ({type(value).__name__}) cannot be "
        f"recorded{why}. Pass a JSON value, or annotate the parameter with its type "
        "(a Path, a date, a pydantic model or a dataclass is then recorded as JSON); load big "
        "values or secrets in a step."
    )


def read_back(
    func: Callable[..., Any], recorded: dict[str, Any], typed: tuple[str, ...]
) -> dict[str, Any]:
    """Recorded parameters as `func` takes them: those `typed` read through its annotations
    (the text of a Path is a Path again); the others decoded (`branchwork.values`: plain JSON
    is itself, `{"$tuple": [1, 2]}` a tuple again)."""
    types = _parameter_types(func) if typed else {}
    values = dict(recorded)
    for name, value in recorded.items():
        adapter = _adapter(types.get(name, Any)) if name in typed else None
        if adapter is not None:
            values[name] = _read_through(adapter, value)
        elif name not in typed:
            with contextlib.suppress(ValueError):  # "$" keys recorded as they were, before
                values[name] = decode(value)
    return values


def _read_through(adapter: TypeAdapter[Any], value: Any) -> Any:
    """`value` validated by `adapter`; as it is if refused (reported where it is used)."""
    from pydantic import ValidationError

    try:
        return adapter.validate_python(value)
    except ValidationError:
        return value


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _reads_back(value: Any) -> bool:
    """Whether `value` is recorded as it is: JSON that reads back as the same value in the
    encoding of `branchwork.values` (which keys caches). A tuple would come back a list, a
    dict's int keys strs, a dict with "$" keys a tagged value: those are written in that
    encoding instead. An OrderedDict or an IntEnum reads back as the dict or int it
    equals, NaN as NaN, as before."""
    try:
        text = json.dumps(value)
        return not _dollar_keyed(value) and bool(encode(json.loads(text)) == encode(value))
    except (TypeError, ValueError):  # no JSON form
        return False


def _dollar_keyed(value: Any) -> bool:
    """Whether a dict in `value` has a key `decode` would read as a tag ("$tuple")."""
    if isinstance(value, dict):
        return any(
            (isinstance(key, str) and key.startswith("$")) or _dollar_keyed(item)
            for key, item in value.items()
        )
    if isinstance(value, (list, tuple)):
        return any(map(_dollar_keyed, value))
    return False


def _encoded(pipeline_name: str, name: str, value: Any) -> Any:
    """An unannotated value plain JSON would change (a tuple, a dict with int keys or "$"
    keys) in the one encoding of values (`branchwork.values`), which `read_back` decodes."""
    try:
        encoded = encode(value)
    except TypeError:
        raise _not_recordable(pipeline_name, name, value, "") from None
    if encode(decode(encoded)) != encoded:
        raise _not_recordable(pipeline_name, name, value, " (it would not read back as it is)")
    return encoded


def _parameter_types(func: Callable[..., Any]) -> dict[str, Any]:
    """`func`'s annotations resolved to types; one that cannot be resolved is left out."""
    try:
        return typing.get_type_hints(func, include_extras=True)
    except Exception:  # some name is unresolvable: resolve the others one by one
        found: dict[str, Any] = {}
        for name, annotation in getattr(func, "__annotations__", {}).items():
            found.update(_resolved(func, name, annotation))
        return found


def _resolved(func: Callable[..., Any], name: str, annotation: Any) -> dict[str, Any]:
    """{name: type} for one annotation of `func`, or {} when it cannot be resolved."""
    alone = SimpleNamespace(
        __annotations__={name: annotation}, __globals__=getattr(func, "__globals__", {})
    )
    try:
        return typing.get_type_hints(alone, include_extras=True)
    except Exception:
        return {}


def _validated(pipeline_name: str, name: str, annotation: Any, value: Any) -> Any:
    if isinstance(value, CommandLineValue):
        return _from_command_line(pipeline_name, name, annotation, value.text)
    adapter = _adapter(annotation)
    if adapter is None:
        return value
    from pydantic import ValidationError

    try:
        return adapter.validate_python(value)
    except ValidationError as error:
        raise _refusal(pipeline_name, name, annotation, value, error) from None


def _from_command_line(pipeline_name: str, name: str, annotation: Any, text: str) -> Any:
    """`text` itself for a `str`, else the first of (its JSON, the text) the type accepts."""
    if annotation is str:
        return text
    parsed = json_or_text(text)
    adapter = _adapter(annotation)
    if adapter is None:
        return parsed
    from pydantic import ValidationError

    errors: list[ValidationError] = []
    for candidate in [parsed] if parsed is text else [parsed, text]:
        try:
            return adapter.validate_python(candidate)
        except ValidationError as error:
            errors.append(error)
    hint = _json_hint(text) if parsed is text else ""
    raise _refusal(pipeline_name, name, annotation, parsed, errors[0], hint) from None


def _json_hint(text: str) -> str:
    """Why `text`, which looks like JSON, did not parse as JSON."""
    if not text.lstrip().startswith(_JSON_OPENERS):
        return ""
    try:
        json.loads(text)
    except ValueError as error:
        return f"; the value is not valid JSON ({error})"
    return ""


def _refusal(
    pipeline_name: str,
    name: str,
    annotation: Any,
    value: Any,
    error: ValidationError,
    hint: str = "",
) -> ConfigurationError:
    first = error.errors()[0]
    path = "".join(f"[{part!r}]" for part in first["loc"])
    where = f" (at {name}{path})" if path else ""
    return ConfigurationError(
        f"Pipeline '{pipeline_name}': parameter '{name}' expects {_type_name(annotation)}, "
        f"got {value!r:.60} ({type(value).__name__}): {first['msg']}{where}{hint}."
    )


def _type_name(annotation: Any) -> str:
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if isinstance(annotation, type) and typing.get_origin(annotation) is None:
        return annotation.__name__
    return repr(annotation).replace("typing.", "")


def _adapter(annotation: Any) -> TypeAdapter[Any] | None:
    """The cached TypeAdapter checking `annotation`; None when nothing is to be checked."""
    if annotation is Any:
        return None
    try:
        return _cached_adapter(annotation)
    except TypeError:  # an unhashable annotation, e.g. Annotated with a list in it
        return _new_adapter(annotation)


@functools.lru_cache(maxsize=256)
def _cached_adapter(annotation: Any) -> TypeAdapter[Any] | None:
    return _new_adapter(annotation)


def _new_adapter(annotation: Any) -> TypeAdapter[Any] | None:
    from pydantic import PydanticUserError, TypeAdapter

    try:
        return TypeAdapter(annotation)
    except PydanticUserError:  # a class pydantic knows no schema for: not checked
        return None
