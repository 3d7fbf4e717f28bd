"""Materializers for Python's built-in values: JSON where it round-trips exactly, else pickle."""

from __future__ import annotations

import array
import itertools
import json
import sys
from typing import Any, ClassVar

from branchwork.materializers.base import BaseMaterializer, type_name
from branchwork.materializers.cloudpickle_materializer import (
    PICKLE_FILE,
    load_pickle,
    save_pickled,
)
from branchwork.materializers.preview import Preview, short_repr

JSON_FILE = "data.json"
# Where each item of a long list starts in data.json (little-endian uint64, one past the end
# last), so a mapped step reads its item alone (`CollectionMaterializer.load_item`).
ITEM_OFFSETS_FILE = "data.json.items"
INDEXED_LIST_ITEMS = 1000  # shorter lists are read whole: cheaper than two reads
TAGGED_JSON_FILE = "data.tagged.json"  # JSON where every array carries a list/tuple tag
BYTES_FILE = "data.bin"

_SCALARS = frozenset({type(None), bool, int, float, str})
_JSON_TYPES = _SCALARS | {list, dict, tuple}
_ENCODER = json.JSONEncoder(separators=(",", ":"))  # reused: building one per call costs µs


class _NotJson(Exception):
    """Part of a value JSON cannot carry exactly; the message says which, for the warning."""


class BuiltinMaterializer(BaseMaterializer):
    """None, bool, int, float and str as `data.json`.

    Values JSON cannot carry exactly (subclasses such as enums, huge ints) are pickled instead.
    """

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (type(None), bool, int, float, str)
    HASH_FROM_WRITES = True
    INLINE = True

    def save(self, data: Any) -> None:
        if type(data) not in _JSON_TYPES:  # a subclass: JSON would load the base type
            save_pickled(self, data)
            return
        try:
            tagged = _needs_tags(data)
            encoded = _ENCODER.encode(_tag(data) if tagged else data).encode()
        except _NotJson as exc:
            save_pickled(self, data, str(exc))
            return
        except (ValueError, RecursionError):  # an int too long for str(), a cycle, deep nesting
            save_pickled(self, data)
            return
        self._write_bytes(TAGGED_JSON_FILE if tagged else JSON_FILE, encoded)

    def load(self, data_type: type) -> Any:
        filename, data = self._read_first(JSON_FILE, TAGGED_JSON_FILE, PICKLE_FILE)
        if filename == PICKLE_FILE:
            return load_pickle(data)
        value = json.loads(data)
        return _untag(value) if filename == TAGGED_JSON_FILE else value


class CollectionMaterializer(BuiltinMaterializer):
    """list, dict and tuple as JSON, tagged only when it holds tuples so they come back as tuples.

    Dict key order is kept. Anything JSON cannot carry exactly (non-str keys, sets, other
    objects inside) makes the whole value a pickle.
    """

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (list, dict, tuple)

    def save(self, data: Any) -> None:
        if type(data) is not list or len(data) < INDEXED_LIST_ITEMS:
            super().save(data)
            return
        try:
            if _needs_tags(data):
                super().save(data)
                return
            items = [_ENCODER.encode(item).encode() for item in data]
        except (_NotJson, ValueError, RecursionError):
            super().save(data)  # pickled, with the warning saying why
            return
        sizes = (len(item) + 1 for item in items)  # each item and the comma after it
        offsets = array.array("Q", itertools.accumulate(sizes, initial=1))
        if sys.byteorder != "little":
            offsets.byteswap()
        self._write_bytes(JSON_FILE, b"[" + b",".join(items) + b"]")
        self._write_bytes(ITEM_OFFSETS_FILE, offsets.tobytes())

    def preview(self, data: Any) -> Preview:
        return Preview(text=short_repr(data), metadata={"length": len(data)})

    def item_count(self, data: Any) -> int | None:
        return len(data) if isinstance(data, (list, tuple)) else None

    def load_item(self, data_type: type, index: int, stop: int | None = None) -> Any:
        """A long list's item (or items) read alone through its offsets; else the fallback."""
        store = self.artifact_store
        end = index + 1 if stop is None else stop
        try:
            bounds = store.read_range(
                store.join(self.uri, ITEM_OFFSETS_FILE), 8 * index, 8 * (end + 1)
            )
        except FileNotFoundError:
            return super().load_item(data_type, index, stop)
        offsets = array.array("Q", bounds)
        if sys.byteorder != "little":
            offsets.byteswap()
        if len(offsets) != end - index + 1:  # an index past the end: the fallback says so
            return super().load_item(data_type, index, stop)
        text = store.read_range(store.join(self.uri, JSON_FILE), offsets[0], offsets[-1] - 1)
        return json.loads(text) if stop is None else json.loads(b"[" + text + b"]")


class BytesMaterializer(BaseMaterializer):
    """bytes as the raw file `data.bin`."""

    ASSOCIATED_TYPES: ClassVar[tuple[type, ...]] = (bytes,)
    HASH_FROM_WRITES = True
    INLINE = True

    def save(self, data: Any) -> None:
        if type(data) is bytes:
            self._write_bytes(BYTES_FILE, data)
        else:
            save_pickled(self, data)

    def preview(self, data: Any) -> Preview:
        return Preview(text=short_repr(data), metadata={"size": len(data)})

    def load(self, data_type: type) -> Any:
        filename, data = self._read_first(BYTES_FILE, PICKLE_FILE)
        return data if filename == BYTES_FILE else load_pickle(data)


def _needs_tags(value: Any) -> bool:
    """Whether `value` holds a tuple (so plain JSON would turn it into a list).

    Raises _NotJson when some part of it cannot be JSON at all.
    """
    kind = type(value)
    if kind in _SCALARS:
        return False
    if kind is dict:
        for key in value:
            if type(key) is not str:
                raise _NotJson(f" with {type_name(type(key))} keys")
        items = value.values()
    elif kind is list or kind is tuple:
        items = value
    else:
        raise _NotJson(f" holding {type_name(kind)}")
    tagged = kind is tuple
    for item in items:
        tagged |= _needs_tags(item)
    return tagged


def _tag(value: Any) -> Any:
    """`value` with each list/tuple as an array whose first item is "l" or "t"."""
    kind = type(value)
    if kind is dict:
        return {key: _tag(item) for key, item in value.items()}
    if kind is list or kind is tuple:
        return ["t" if kind is tuple else "l", *map(_tag, value)]
    return value


def _untag(value: Any) -> Any:
    """The inverse of `_tag`."""
    if type(value) is dict:
        return {key: _untag(item) for key, item in value.items()}
    if type(value) is list:
        items = [_untag(item) for item in value[1:]]
        return tuple(items) if value[0] == "t" else items
    return value
