"""A value's type as recorded with its artifact ("module.QualName"), and back.

Here, beside the materializers that the recorded type is handed to, so that everything that
loads an artifact (a step's input, `ArtifactVersionResponse.load()`) resolves it one way.
"""

from __future__ import annotations

import functools
import importlib
import sys
from typing import Any

from branchwork.user_code import recorded_module, script_modules


@functools.lru_cache(maxsize=512)
def resolve_type(path: str) -> Any:
    """The class named "module.QualName" (Any when it cannot be imported). A nested class's
    module is the longest prefix that imports."""
    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        for module_name in script_modules(".".join(parts[:split])):
            try:
                obj: Any = importlib.import_module(module_name)
                for part in parts[split:]:
                    obj = getattr(obj, part)
                return obj
            except Exception:
                continue
    return Any


def type_path(value: Any) -> str:
    """The "module.QualName" of `value`'s class, as `resolve_type` reads it back (interned:
    a run holds one per output)."""
    cls = type(value)
    return sys.intern(f"{recorded_module(cls.__module__)}.{cls.__qualname__}")
