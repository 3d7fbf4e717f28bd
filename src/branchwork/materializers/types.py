"""A value's type as recorded with its artifact ("module.QualName"), and back.

Here, beside the materializers that the recorded type is handed to, so that everything that
loads an artifact (a step's input, `ArtifactVersionResponse.load()`) resolves it one way.
"""

from __future__ import annotations

import functools
import sys
import typing
from collections.abc import Iterable
from typing import Any

from branchwork.user_code import find_recorded, recorded_name


def resolve_type(path: str) -> Any:
    """The class named "module.QualName" (Any when it cannot be imported). A nested class's
    module is the longest prefix that imports; a script's (`__main__`) is found as
    `user_code.find_recorded` says."""
    if not path.startswith("__main__."):
        return _resolve_installed(path)
    try:
        return find_recorded("__main__", path.removeprefix("__main__."))
    except (ImportError, AttributeError):
        return Any


@functools.lru_cache(maxsize=512)
def _resolve_installed(path: str) -> Any:
    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            return find_recorded(".".join(parts[:split]), ".".join(parts[split:]))
        except Exception:
            continue
    return Any


def loaded_type(path: str) -> Any:
    """The class named "module.QualName" if its module is loaded in this process, else None:
    nothing is imported (a library's module, or a module's top-level code, on the loop's
    machine just to name a class)."""
    if path.startswith("__main__."):
        found = resolve_type(path)
        return None if found is Any else found
    parts = path.split(".")
    for split in range(len(parts) - 1, 0, -1):
        found = sys.modules.get(".".join(parts[:split]))
        for part in parts[split:] if found is not None else ():
            found = getattr(found, part, None)
        if found is not None:
            return found
    return None


def type_path(value: Any) -> str:
    """The "module.QualName" of `value`'s class, as `resolve_type` reads it back (interned:
    a run holds one per output)."""
    return sys.intern(recorded_name(type(value)))


def script_classes(annotations: Iterable[Any]) -> dict[str, type]:
    """The classes a script defines (`__main__`) that `annotations` name, through `list[X]`,
    `X | None` and the like, by the path `type_path` records. A process that runs only a
    step (isolated, Ray) cannot import the script to resolve that path; the step, pickled
    with its annotations, brings the classes with it."""
    found: dict[str, type] = {}
    todo = list(annotations)
    while todo:
        annotation = todo.pop()
        if isinstance(annotation, type) and not typing.get_args(annotation):
            path = recorded_name(annotation)
            if path.startswith("__main__.") and path not in found:
                found[path] = annotation
                todo.extend(annotation.__subclasses__())  # `shape: Shape` given a Circle
        else:
            todo.extend(typing.get_args(annotation))
    return found
