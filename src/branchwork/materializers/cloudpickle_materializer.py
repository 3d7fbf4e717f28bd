"""The last resort: any value as a cloudpickle, with a warning because pickles are fragile."""

from __future__ import annotations

import pickle
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
    import cloudpickle

    warn_pickled(type(data), which)
    materializer._write_bytes(PICKLE_FILE, cloudpickle.dumps(data, protocol=PICKLE_PROTOCOL))
    remember_pickled(materializer.uri)


def load_pickle(data: bytes) -> Any:
    """The value in a pickle, if `pickle_policy` allows unpickling the artifact being loaded."""
    check_unpickling()
    return pickle.loads(data)  # cloudpickle output is plain pickle; loading needs no cloudpickle


class CloudpickleMaterializer(BaseMaterializer):
    """Any value, as `data.pkl`; chosen when no other materializer fits."""

    HASH_FROM_WRITES = True
    INLINE = True

    def save(self, data: Any) -> None:
        save_pickled(self, data)

    def load(self, data_type: type) -> Any:
        return load_pickle(self._read_bytes(PICKLE_FILE))
