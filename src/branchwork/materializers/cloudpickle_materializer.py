"""The last resort: any value as a cloudpickle, with a warning because pickles are fragile."""

from __future__ import annotations

import functools
import io
import pickle
import sys
import warnings
from typing import Any

from branchwork.materializers.base import BaseMaterializer, type_name
from branchwork.materializers.pickle_policy import check_unpickling, remember_pickled

PICKLE_FILE = "data.pkl"
PICKLE_PROTOCOL = 5  # fixed rather than the interpreter's default, so hashes stay stable

_warned: set[tuple[type, str]] = set()


def warn_pickled(data_type: type, which: str = "") -> None:
    """Warn, once per type (and `which`, narrowing it down), that such values are pickled."""
    if (data_type, which) in _warned:
        return
    _warned.add((data_type, which))
    warnings.warn(
        f"{type_name(data_type)} values{which} are stored as cloudpickles (no materializer "
        "stores them exactly): such artifacts only load with the same code and Python version. "
        "To store them durably, subclass branchwork.materializers.BaseMaterializer and call "
        f"register_materializer(YourMaterializer, {data_type.__qualname__}). "
        "(Shown once per type.)",
        stacklevel=2,
    )


def save_pickled(materializer: BaseMaterializer, data: Any, which: str = "") -> None:
    """Write `data` as a cloudpickle in the materializer's folder (the fallback of built-ins)."""
    warn_pickled(type(data), which)
    materializer._write_bytes(PICKLE_FILE, dumps_canonical(data))
    remember_pickled(materializer.uri)


def dumps_canonical(data: Any) -> bytes:
    """`data` as a cloudpickle whose bytes are the same in every process for an equal value.

    Pickle writes a set in its iteration order, which for strs follows the process's hash
    seed (and for any set, the order it was filled in): the same set hashed otherwise in each
    process, so every step downstream of a set missed the cache. Where the pickle holds a set
    (its opcodes are there, or those bytes are data), the sets inside lists, tuples and dicts
    are written sorted instead.
    """
    import cloudpickle

    pickled: bytes = cloudpickle.dumps(data, protocol=PICKLE_PROTOCOL)
    if _EMPTY_SET in pickled or _FROZENSET in pickled:  # or data bytes that look like them
        ordered = _sets_sorted(data, {})
        if ordered is not data:
            pickled = cloudpickle.dumps(ordered, protocol=PICKLE_PROTOCOL)
    return pickled


_EMPTY_SET, _FROZENSET = pickle.EMPTY_SET, pickle.FROZENSET


class _SortedSet:
    """Pickles as `kind(items)`: a set whose items are written in the order given."""

    __slots__ = ("items", "kind")

    def __init__(self, kind: type, items: list[Any]) -> None:
        self.kind, self.items = kind, items

    def __reduce__(self) -> tuple[type, tuple[list[Any]]]:
        return self.kind, (self.items,)


def _sets_sorted(value: Any, memo: dict[int, Any]) -> Any:
    """`value` with each set and frozenset in it (within exact lists, tuples and dict values)
    a `_SortedSet`; containers without sets are kept as they are. `memo` (by id) keeps what
    is shared shared, and a container inside itself as it is (no recursion without end)."""
    kind = type(value)
    if kind not in _WALKED:
        return value
    if id(value) in memo:
        return memo[id(value)]
    memo[id(value)] = value  # while it is walked: what contains it keeps it as it is
    if kind is set or kind is frozenset:
        done: Any = _SortedSet(kind, [_sets_sorted(item, memo) for item in _sorted_items(value)])
    elif kind is dict:
        values = {key: _sets_sorted(item, memo) for key, item in value.items()}
        done = value if all(values[key] is item for key, item in value.items()) else values
    else:
        items = [_sets_sorted(item, memo) for item in value]
        unchanged = all(new is old for new, old in zip(items, value))
        done = value if unchanged else items if kind is list else tuple(items)
    memo[id(value)] = done
    return done


_WALKED = frozenset({set, frozenset, list, tuple, dict})


def _sorted_items(items: set[Any] | frozenset[Any]) -> list[Any]:
    """The items of a set in an order that depends on them alone: sorted when they are all
    strs, ints or bytes of one type (a total order), else by their own canonical pickles."""
    kinds = {type(item) for item in items}
    if len(kinds) == 1 and kinds <= {str, int, bytes}:
        return sorted(items)
    return sorted(items, key=dumps_canonical)


def load_pickle(data: bytes) -> Any:
    """The value in a pickle, if `pickle_policy` allows unpickling the artifact being loaded."""
    check_unpickling()
    return loads(data)


def loads(data: bytes) -> Any:
    """`pickle.loads`, except that a class pickled by value (with cloudpickle) that is this
    process's own live class is used as it is. cloudpickle set the live class's attributes
    from the pickle: its methods became copies whose module globals were those the pickle
    held, so after a value of the script's `Model` was loaded, `Model().scaled()` read the
    global `FACTOR` as it was when pickled, in the whole process, for good (a sweep setting
    it got the first value back). Loading needs no cloudpickle: the output is plain pickle."""
    with io.BytesIO(data) as file:
        return _KeepingLiveClasses(file).load()


class _KeepingLiveClasses(pickle.Unpickler):
    """An Unpickler that skips cloudpickle's `_class_setstate` for a live class (see
    `loads`): one its module holds by its qualified name."""

    def find_class(self, module: str, name: str) -> Any:
        found = super().find_class(module, name)
        # (cloudpickle 2.x wrote cloudpickle.cloudpickle_fast._class_setstate)
        if name == "_class_setstate" and module.partition(".")[0] == "cloudpickle":
            return functools.partial(_set_unless_live, found)
        return found


def _set_unless_live(class_setstate: Any, cls: type, state: Any) -> type:
    return cls if _is_live(cls) else class_setstate(cls, state)


def _is_live(cls: type) -> bool:
    holder: Any = sys.modules.get(getattr(cls, "__module__", None) or "")
    for part in getattr(cls, "__qualname__", "<locals>").split("."):
        holder = getattr(holder, part, None)
    return holder is cls


class CloudpickleMaterializer(BaseMaterializer):
    """Any value, as `data.pkl`; chosen when no other materializer fits."""

    HASH_FROM_WRITES = True
    INLINE = True

    def save(self, data: Any) -> None:
        save_pickled(self, data)

    def load(self, data_type: type) -> Any:
        return load_pickle(self._read_bytes(PICKLE_FILE))
