"""Cloudpickles of values whose classes the running script defines: the same bytes in every
process for an equal value, and loaded without touching this process's own classes.

cloudpickle pickles a class it cannot import by name (a script's) by value, with a "tracker
id" that lets a process unpickle it once: a random one, made in each process. An equal
instance was therefore other bytes in every process, and every step downstream of it missed
the cache. `dumps` gives such a class, the first time it pickles it, an id made from
everything the class pickles to (its methods' code, the globals and closures they read, its
attributes, the ids of the classes it holds in turn) with its own id left out: the same
definition gets the same id in every process, another definition (a factory's classes of
one source with other values) another id. Classes being given an id at once (one holding
another that holds it) are left out of each other's digests alike. Another thread that
pickles such a class meanwhile with plain cloudpickle writes the unique placeholder id it
holds then, as good as cloudpickle's random one.

Loading one, cloudpickle sets the attributes of the class the id names in this process:
where that is the script's live class, its methods became copies reading the globals the
pickle held (`Model().scaled()` read `FACTOR` as pickled, for good). `loads` leaves a live
class, one its module holds by its qualified name, as it is.
"""

from __future__ import annotations

import functools
import hashlib
import io
import pickle
import sys
import threading
import uuid
from typing import Any

PICKLE_PROTOCOL = 5  # fixed rather than the interpreter's default, so hashes stay stable

_tracking = threading.RLock()  # one thread gives ids at a time; nested classes re-enter
_placeholders: list[bytes] = []  # of the classes being given an id, in this thread's walk


def dumps(data: Any) -> bytes:
    """`data` as a cloudpickle, classes pickled by value under ids made from their definitions
    (plain cloudpickle if its internals are not those this was written against)."""
    import cloudpickle

    pickler = _stable_pickler()
    if pickler is None:
        return bytes(cloudpickle.dumps(data, protocol=PICKLE_PROTOCOL))
    with io.BytesIO() as file:
        pickler(file, protocol=PICKLE_PROTOCOL).dump(data)
        return file.getvalue()


@functools.cache
def _stable_pickler() -> type | None:
    import cloudpickle
    from cloudpickle import cloudpickle as internals

    needed = (
        "_DYNAMIC_CLASS_TRACKER_BY_CLASS",
        "_DYNAMIC_CLASS_TRACKER_BY_ID",
        "_DYNAMIC_CLASS_TRACKER_LOCK",
        "_should_pickle_by_reference",
    )
    if not all(hasattr(internals, name) for name in needed):
        return None

    class StablePickler(cloudpickle.Pickler):  # type: ignore[misc]
        def reducer_override(self, obj: Any) -> Any:
            if isinstance(obj, type) and not internals._should_pickle_by_reference(obj):
                _track(obj, internals)
            return super().reducer_override(obj)

    return StablePickler


def _track(cls: type, internals: Any) -> None:
    """Give `cls` its id from its definition, unless it has one (see the module docstring)."""
    by_class, by_id, lock = (
        internals._DYNAMIC_CLASS_TRACKER_BY_CLASS,
        internals._DYNAMIC_CLASS_TRACKER_BY_ID,
        internals._DYNAMIC_CLASS_TRACKER_LOCK,
    )
    with _tracking:
        if cls in by_class:
            return
        placeholder = uuid.uuid4().hex
        with lock:
            by_class[cls] = placeholder
        _placeholders.append(placeholder.encode())
        try:
            probe = dumps(cls)
            for each in _placeholders:
                probe = probe.replace(each, b"0" * 32)
        except Exception:  # noqa: BLE001 - a class that does not pickle: cloudpickle says so
            with lock:
                del by_class[cls]
            return
        finally:
            _placeholders.pop()
        tracker = hashlib.sha256(probe).hexdigest()[:32]
        with lock:
            by_class[cls] = tracker
            by_id[tracker] = cls  # loaded here, its instances are of this very class


def loads(data: bytes) -> Any:
    """`pickle.loads`, leaving this process's live classes as they are (module docstring).
    Loading needs no cloudpickle: its output is plain pickle."""
    with io.BytesIO(data) as file:
        return _KeepingLiveClasses(file).load()


class _KeepingLiveClasses(pickle.Unpickler):
    """Skips cloudpickle's `_class_setstate` for a live class."""

    def find_class(self, module: str, name: str) -> Any:
        found = super().find_class(module, name)
        if module == "cloudpickle.cloudpickle" and name == "_class_setstate":
            return functools.partial(_set_unless_live, found)
        return found


def _set_unless_live(class_setstate: Any, cls: type, state: Any) -> type:
    return cls if _is_live(cls) else class_setstate(cls, state)


def _is_live(cls: type) -> bool:
    """Whether `cls` is the class its module holds by its qualified name."""
    holder: Any = sys.modules.get(getattr(cls, "__module__", None) or "")
    for part in getattr(cls, "__qualname__", "<locals>").split("."):
        holder = getattr(holder, part, None)
    return holder is cls
