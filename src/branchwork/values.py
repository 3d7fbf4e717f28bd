"""One value tree: the only walker of nested values and the only encoding of them.

Step arguments, pipeline return values, step request envelopes, recorded step configurations
and cache keys all hold nested lists, tuples and dicts whose leaves may be special (a
reference to a step output, a stored artifact). They are walked and encoded here and nowhere
else: when each place had its own encoder they drifted, and a step called with `(1, 2)` got
the cached result of its call with `[1, 2]`.

The encoding is plain JSON wherever plain JSON is unambiguous, so recorded configurations stay
readable: None, bools, ints, finite floats, strs and lists are themselves (JSON keeps `1`,
`1.0` and `true` apart, and nothing here converts one into another), and a dict whose keys
are all strs not starting with "$" is an object. Everything else is an object with one "$" key:

    {"$tuple": [...]}                    a tuple
    {"$dict": [[key, value], ...]}       any other dict (int, float, tuple or "$..." keys)
    {"$float": "nan" | "inf" | "-inf"}   a float JSON cannot hold
    {"$<tag>": ..., ...}                 a leaf of the caller's (see `Leaf`)

Subclasses of int, float and str (an IntEnum, numpy.float64) are written as their base type,
as `json` writes them; subclasses of the containers (a NamedTuple, an OrderedDict) as the base
container, as the walkers always rebuilt them. Anything else raises TypeError: it has no JSON
form, so it cannot be recorded or sent to another process.

Cache keys (`canonical_hash`) hash this encoding, so two values share a key exactly when a
step receives the same thing: the same types (a tuple is not a list; `1`, `1.0` and `True` are
three keys, as `type(x)` tells them apart) and the same contents, whatever the order in which a
dict's entries were inserted (dict equality ignores it too). Every NaN is one value here. There
a subclass of int, float or str, which a step receives as it was passed, is
`{"$typed": "module.QualName", "value": <its base type's form>}`: `Split.TRAIN`, `Fold.FIRST`
and `0` were one key, and a step receiving one was served the result of another. (A step
receives a container's subclass as the base container: a NamedTuple as a tuple.)
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias

Kind: TypeAlias = "type | tuple[type, ...]"

_JSON_AS_IS = (str, int, bool, type(None))  # exact types: leaves written as they are
# A scalar subclass's value as its base type holds it (an enum's str() is its name): a key
# names the subclass beside it. bool cannot be subclassed: listed to be found before int.
_AS_BASE: dict[type, Callable[[Any], Any]] = {
    bool: bool,
    int: int.__index__,
    float: float.__float__,
    str: str.__str__,
}
_SCALARS = tuple(_AS_BASE)


@dataclass(frozen=True)
class Leaf:
    """A caller's leaf, written as an object holding the key `tag` ("$" and a name): `encode`
    writes instances of `kind` with `to_json`, `decode` reads objects holding `tag` with
    `from_json`. A leaf only written (a cache key's) or only read (where another layer wrote
    it) leaves out the other side."""

    tag: str
    kind: Kind = ()
    to_json: Callable[[Any], Any] | None = None
    from_json: Callable[[dict[str, Any]], Any] | None = None


def tree_map(fn: Callable[[Any], Any], value: Any, only: Kind | None = None) -> Any:
    """`value` rebuilt with `fn` applied to each leaf; with `only`, to instances of `only`
    alone (they are leaves even when they are tuples, like NamedTuple references), and other
    leaves are kept as they are."""
    if only is None:
        return _map_all(fn, value)
    if isinstance(value, only):
        return fn(value)
    if type(value) in _JSON_AS_IS:  # nothing to rebuild: the common case, made cheap
        return value
    if isinstance(value, list):
        return [fn(item) if isinstance(item, only) else tree_map(fn, item, only) for item in value]
    if isinstance(value, tuple):
        return tuple(
            fn(item) if isinstance(item, only) else tree_map(fn, item, only) for item in value
        )
    if isinstance(value, dict):
        return {
            key: fn(item) if isinstance(item, only) else tree_map(fn, item, only)
            for key, item in value.items()
        }
    return value


def _map_all(fn: Callable[[Any], Any], value: Any) -> Any:
    if isinstance(value, list):
        return [_map_all(fn, item) for item in value]
    if isinstance(value, tuple):
        return tuple(_map_all(fn, item) for item in value)
    if isinstance(value, dict):
        return {key: _map_all(fn, item) for key, item in value.items()}
    return fn(value)


def leaves_of(value: Any, only: Kind | None = None, path: str = "") -> Iterator[tuple[str, Any]]:
    """Each leaf of `value` (each instance of `only`, if given), depth first and in order,
    with its path from `value`: `name`, `name[0]`, `name.key`."""
    if only is not None and isinstance(value, only):
        yield path, value
        return
    if isinstance(value, (list, tuple)):
        children: Iterator[tuple[str, Any]] = (
            (f"{path}[{index}]", item) for index, item in enumerate(value)
        )
    elif isinstance(value, dict):
        children = ((f"{path}.{key}" if path else str(key), item) for key, item in value.items())
    else:
        if only is None:
            yield path, value
        return
    for where, item in children:
        if only is None:
            yield from leaves_of(item, None, where)
        elif isinstance(item, only):  # a leaf one level down: no recursion for it
            yield where, item
        elif type(item) not in _JSON_AS_IS:
            yield from leaves_of(item, only, where)


def encode(value: Any, leaf: Leaf | None = None) -> Any:
    """The JSON-able form of `value` (see the module docstring); TypeError for a value that
    has none, naming its type."""
    return _encode(value, leaf, None)


def decode(data: Any, leaf: Leaf | None = None) -> Any:
    """The value `encode` wrote as `data`; objects tagged `leaf.tag` are read by the leaf."""
    if isinstance(data, list):
        return [decode(item, leaf) for item in data]
    if not isinstance(data, dict):
        return data
    tag = next((key for key in data if key.startswith("$")), None)
    if tag is None:
        return {key: decode(item, leaf) for key, item in data.items()}
    if tag == "$tuple":
        return tuple(decode(item, leaf) for item in data[tag])
    if tag == "$dict":
        return _decode_dict(data[tag], leaf)
    if tag == "$float":
        return float(data[tag])
    if leaf is not None and leaf.from_json is not None and tag == leaf.tag:
        return leaf.from_json(data)
    raise ValueError(f"Cannot decode a value tagged {tag!r}: no reader for it was given.")


def canonical_hash(value: Any, leaf: Leaf | None = None) -> str:
    """A sha256 hex digest of `value`'s encoding, the same in every process and for every
    order of dict entries (see the module docstring for what counts as the same value)."""
    return hash_json(canonical(value, leaf))


def canonical(
    value: Any, leaf: Leaf | None = None, type_name: Callable[[type], str] | None = None
) -> Any:
    """`value`'s encoding with its dict entries in a fixed order and subclasses of the plain
    types named (`type_name`, by default "module.QualName"): what `canonical_hash` hashes,
    for callers that hash it together with JSON of their own."""
    return _encode(value, leaf, type_name or _qualified_name)


def _qualified_name(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


def hash_json(data: Any) -> str:
    """A sha256 hex digest of JSON-able `data`, whatever the order of its objects' keys."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _encode(value: Any, leaf: Leaf | None, canonical: Callable[[type], str] | None) -> Any:
    """`canonical`: None to write a value to be read back, else how a key names the type of
    a subclass of a plain type."""
    kind = type(value)
    if kind in _JSON_AS_IS:  # the common leaves first: a cache key per step encodes them
        if kind is int and value.bit_length() > LONG_INT:
            _check_digits(value)
        return value
    if kind is float and math.isfinite(value):
        return value
    if leaf is not None and leaf.to_json is not None and isinstance(value, leaf.kind):
        return leaf.to_json(value)
    if canonical is not None and kind not in _SCALARS and isinstance(value, _SCALARS):
        as_base = next(_AS_BASE[base] for base in _SCALARS if isinstance(value, base))
        return {"$typed": canonical(kind), "value": _encode(as_base(value), leaf, canonical)}
    if isinstance(value, (list, tuple)):
        items = [_encode(item, leaf, canonical) for item in value]
        return items if isinstance(value, list) else {"$tuple": items}
    if isinstance(value, dict):
        return _encode_dict(value, leaf, canonical)
    return _encode_scalar(value)


def _encode_dict(
    value: dict[Any, Any], leaf: Leaf | None, canonical: Callable[[type], str] | None
) -> Any:
    """Keys are plain values, never leaves: a leaf loaded back may not be hashable."""
    if all(type(key) is str and key[:1] != "$" for key in value):
        return {key: _encode(item, leaf, canonical) for key, item in value.items()}
    if all(isinstance(key, str) and not key.startswith("$") for key in value):
        return {str.__str__(key): _encode(item, leaf, canonical) for key, item in value.items()}
    pairs = [
        [_encode(key, None, canonical), _encode(item, leaf, canonical)]
        for key, item in value.items()
    ]
    if canonical is not None:
        pairs.sort(key=lambda pair: json.dumps(pair[0], sort_keys=True))
    return {"$dict": pairs}


LONG_INT = 4000  # bits: shorter ints (1 200 digits) are written as text whatever the limit


def _check_digits(value: int) -> None:
    """TypeError for an int longer than Python writes as text (`sys.get_int_max_str_digits`):
    JSON could not hold it, and writing it failed deep in a run."""
    import sys

    limit = getattr(sys, "get_int_max_str_digits", lambda: 0)()
    if limit and abs(value) >= 10**limit:
        digits = int(value.bit_length() * math.log10(2)) + 1
        raise TypeError(
            f"an int of about {digits} digits has no JSON form (Python writes ints of at most "
            f"{limit} digits as text: sys.set_int_max_str_digits)"
        )


def _encode_scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if value.bit_length() > LONG_INT:
            _check_digits(value)
        return int.__index__(value)
    if isinstance(value, float):
        number = float.__float__(value)
        return number if math.isfinite(number) else {"$float": repr(number)}
    if isinstance(value, str):
        return str.__str__(value)
    raise TypeError(
        f"a {type(value).__name__} has no JSON form (only None, bool, int, float, str and "
        "lists, tuples and dicts of them have one)"
    )


def _decode_dict(entries: Any, leaf: Leaf | None) -> dict[Any, Any]:
    """Pairs; or a mapping with str keys, which pipeline return values recorded before
    this encoding hold (`output_structure` rows of existing stores)."""
    if isinstance(entries, dict):
        return {key: decode(item, leaf) for key, item in entries.items()}
    return {decode(key): decode(item, leaf) for key, item in entries}
