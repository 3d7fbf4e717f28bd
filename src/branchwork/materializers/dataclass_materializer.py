"""Dataclass instances as JSON, rebuilt on loading from the class's field annotations.

The file holds the field values only (what `dataclasses.asdict` gives); their types come from
the class, which `load` receives as `data_type` (the artifact's recorded type), so loading
imports no class named by the artifact. A value is written as JSON only when the annotations
rebuild it exactly: nested dataclasses annotated with their exact class (or `X | None`),
lists, tuples and str-keyed dicts annotated as such, sets and frozensets of strs or of ints
annotated as such (written sorted, so an equal set is the same file and content hash in every
process), other fields plain JSON values, and no instance attribute beyond the fields.
Anything else is pickled, with the usual warning.

Loading sets the fields without calling `__init__` (as pickle does): `__post_init__` ran when
the value was made, and running it again could change the value.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from functools import lru_cache
from typing import Any, TypeVar

from branchwork.exceptions import ArtifactError
from branchwork.materializers.base import BaseMaterializer, type_name
from branchwork.materializers.builtin import _needs_tags, _NotJson
from branchwork.materializers.cloudpickle_materializer import (
    PICKLE_FILE,
    load_pickle,
    save_pickled,
)
from branchwork.materializers.preview import Preview, short_repr

DATACLASS_FILE = "dataclass.json"
PREVIEW_FIELDS = 50  # field names listed in a preview

_UNIONS = (typing.Union, types.UnionType)
_T = TypeVar("_T")


class DataclassMaterializer(BaseMaterializer):
    """Any dataclass instance; the registry picks it for dataclasses nothing else stores
    (dataclasses share no base class to register a materializer for)."""

    HASH_FROM_WRITES = True
    INLINE = True

    def save(self, data: Any) -> None:
        if not dataclasses.is_dataclass(data) or isinstance(data, type):
            save_pickled(self, data)  # annotated as a dataclass, but it is not one
            return
        try:
            encoded = json.dumps(_encode(data, type(data)), separators=(",", ":"))
        except _NotJson as exc:
            save_pickled(self, data, str(exc))
            return
        except (ValueError, RecursionError):  # an int too long for str(), a cycle, deep nesting
            save_pickled(self, data)
            return
        self._write_bytes(DATACLASS_FILE, encoded.encode())

    def load(self, data_type: type) -> Any:
        filename, data = self._read_first(DATACLASS_FILE, PICKLE_FILE)
        if filename == PICKLE_FILE:
            return load_pickle(data)
        if not (isinstance(data_type, type) and dataclasses.is_dataclass(data_type)):
            raise MissingClassError.asked_for("dataclass", data_type)
        return _decode(json.loads(data), data_type)

    def preview(self, data: Any) -> Preview:
        """The shortened repr, the class and its field names."""
        if not dataclasses.is_dataclass(data):
            return super().preview(data)
        return class_preview(data, [field.name for field in dataclasses.fields(data)])


class MissingClassError(ArtifactError):
    """Loading a JSON artifact needs its class, which could not be imported here. Its only
    argument is its message, so that the process a step ran in hands it over as itself
    (`error_records.rebuild`)."""

    kind = "class instance"  # what it holds: "dataclass" or "pydantic model" (`asked_for`)

    @classmethod
    def asked_for(cls, kind: str, data_type: Any) -> MissingClassError:
        error = cls(
            f"This artifact holds a {kind} as JSON, and loading it needs the {kind}'s class, "
            f"but it was asked for as {data_type!r}: make the module defining the class "
            "importable where the artifact is loaded (the artifact's data type names it)."
        )
        error.kind = kind
        return error


def class_preview(data: Any, field_names: list[str]) -> Preview:
    """The preview of an instance of a class with named fields (a dataclass, a model)."""
    metadata = {"class": type_name(type(data)), "fields": field_names[:PREVIEW_FIELDS]}
    return Preview(text=short_repr(data), metadata=metadata)


@lru_cache(maxsize=256)
def _field_types(cls: type) -> dict[str, Any]:
    """The annotation of each field of the dataclass `cls`, with forward references resolved."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception as exc:  # NameError, or any error evaluating a string annotation
        raise _NotJson(" whose field annotations cannot be resolved") from exc
    return {field.name: hints.get(field.name, Any) for field in dataclasses.fields(cls)}


def _shape(hint: Any) -> tuple[str, Any]:
    """What an annotation asks of a value: ("dataclass", cls), ("optional", inner),
    ("list", item), ("tuple", X for `tuple[X, ...]` or the tuple of item annotations),
    ("dict", value annotation), ("set", set or frozenset), or ("plain", None): a JSON value
    kept as it is."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in _UNIONS:
        others = [arg for arg in args if arg is not type(None)]
        if len(others) == 1:
            return ("optional", others[0])
        return ("plain", None)  # several types: only a plain JSON value comes back as it was
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return ("dataclass", hint)
    if origin is list or hint is list:
        return ("list", args[0] if args else Any)
    if origin is tuple or hint is tuple:
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            return ("tuple", args[0] if args else Any)  # any length
        return ("tuple", args)  # one annotation per item
    if origin is dict or hint is dict:
        return ("dict", args[1] if args else Any)
    for kind in (set, frozenset):
        if origin is kind or hint is kind:
            return ("set", kind)
    return ("plain", None)


def _encode(value: Any, hint: Any) -> Any:
    """`value` as JSON that `_decode(..., hint)` rebuilds exactly; raises _NotJson if none."""
    kind, inner = _shape(hint)
    if kind == "optional":
        return None if value is None else _encode(value, inner)
    if kind == "dataclass":
        if type(value) is not inner:
            raise _NotJson(
                f" holding a {type_name(type(value))} in a field annotated {inner.__qualname__}"
            )
        return _encode_fields(value)
    expected = {"list": list, "tuple": tuple, "dict": dict, "set": inner}.get(kind)
    if expected is not None and type(value) is not expected:
        raise _NotJson(f" holding a {type_name(type(value))} annotated as {hint!r}")
    if kind in ("list", "tuple"):
        return _encode_items(value, inner, hint)
    if kind == "dict":
        if not all(type(key) is str for key in value):
            raise _NotJson(" with non-str dict keys")
        return {key: _encode(item, inner) for key, item in value.items()}
    if kind == "set":
        return _sorted_set(value)
    return _plain(value)


def _sorted_set(value: set[Any] | frozenset[Any]) -> list[Any]:
    """A set's items as a sorted JSON list: only strs, or only ints (bools apart, which
    `_decode` could not tell from ints)."""
    kinds = {type(item) for item in value}
    if not kinds <= {str} and not kinds <= {int}:
        raise _NotJson(" holding a set of other items than only strs or only ints")
    return sorted(value)


def _encode_items(value: Any, inner: Any, hint: Any) -> list[Any]:
    """The items of a list or tuple; `inner` is one annotation for all, or a tuple of one per
    item."""
    if isinstance(inner, tuple):
        if len(value) != len(inner):
            raise _NotJson(f" holding a tuple of {len(value)} items annotated as {hint!r}")
        return [_encode(item, item_hint) for item, item_hint in zip(value, inner)]
    if _shape(inner)[0] == "plain":  # the common big case: one check for all the items
        return _plain(list(value))
    return [_encode(item, inner) for item in value]


def _plain(value: _T) -> _T:
    """`value`, checked to be JSON that loads back as it is."""
    if _needs_tags(value):  # raises _NotJson for what JSON cannot hold at all
        raise _NotJson(" holding tuples in fields not annotated as tuples")
    return value


def _encode_fields(value: Any) -> dict[str, Any]:
    cls: type = type(value)
    field_types = _field_types(cls)
    extra = set(getattr(value, "__dict__", ())) - field_types.keys()
    if extra:
        raise _NotJson(f" with attributes beyond their fields ({', '.join(sorted(extra))})")
    return {name: _encode(getattr(value, name), hint) for name, hint in field_types.items()}


def _decode(data: Any, hint: Any) -> Any:
    """The value `_encode(value, hint)` gave `data` for."""
    kind, inner = _shape(hint)
    if kind == "optional":
        return None if data is None else _decode(data, inner)
    if kind == "dataclass":
        fields = _field_types(inner)
        if fields.keys() != data.keys():
            raise ArtifactError(
                f"This artifact holds a {type_name(inner)} stored with the fields "
                f"{', '.join(data) or '(none)'}, but the class now has "
                f"{', '.join(fields) or '(none)'}: its fields changed since the value was "
                "stored. Load it with the class as it was, or run the step again."
            )
        instance = inner.__new__(inner)
        for name, field_hint in fields.items():
            object.__setattr__(instance, name, _decode(data[name], field_hint))  # frozen too
        return instance
    if kind in ("list", "tuple"):
        items = _decode_items(data, inner)
        return items if kind == "list" else tuple(items)
    if kind == "dict":
        return {key: _decode(item, inner) for key, item in data.items()}
    if kind == "set":
        return inner(data)
    return data


def _decode_items(data: list[Any], inner: Any) -> list[Any]:
    """The inverse of `_encode_items`."""
    if isinstance(inner, tuple):
        return [_decode(item, item_hint) for item, item_hint in zip(data, inner)]
    if _shape(inner)[0] == "plain":
        return data
    return [_decode(item, inner) for item in data]
