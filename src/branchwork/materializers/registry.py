"""Which materializer stores a value, and re-finding the one that wrote an artifact.

Lookup order for each class of the type's MRO: `register_materializer` registrations, then
the built-ins, then `branchwork.materializers` entry points (loaded on the first miss);
the cloudpickle fallback when nothing matches.
"""

from __future__ import annotations

import importlib
import sys
import threading
import warnings
from types import GenericAlias
from typing import Any, Final, TypeGuard

from branchwork.exceptions import ArtifactError, ConfigurationError
from branchwork.materializers.base import BaseMaterializer
from branchwork.materializers.builtin import (
    BuiltinMaterializer,
    BytesMaterializer,
    CollectionMaterializer,
)
from branchwork.materializers.cloudpickle_materializer import CloudpickleMaterializer

ENTRY_POINT_GROUP = "branchwork.materializers"

_MISSING: Final = object()
# Materializers for types of libraries we must not import: added once the library is loaded,
# since a value of its types cannot exist before.
_LAZY = {
    "numpy": "branchwork.materializers.numpy_materializer:NumpyMaterializer",
    "pandas": "branchwork.materializers.pandas_materializer:PandasMaterializer",
}

_registered: dict[type, type[BaseMaterializer]] = {}
_builtin: dict[type, type[BaseMaterializer]] = {
    data_type: cls
    for cls in (BuiltinMaterializer, CollectionMaterializer, BytesMaterializer)
    for data_type in cls.ASSOCIATED_TYPES
}
_plugins: dict[type, type[BaseMaterializer]] = {}
# Lookup cache (None: no materializer), cleared when registrations change.
_resolved: dict[type, type[BaseMaterializer] | None] = {}
_by_path: dict[str, type[BaseMaterializer]] = {}
_pending_lazy = dict(_LAZY)
_entry_points_loaded = False
_lock = threading.Lock()


def register_materializer(materializer_cls: type[BaseMaterializer], *types: type) -> None:
    """Use `materializer_cls` for `types` (default: its ASSOCIATED_TYPES) and their subclasses.

    Registrations win over the built-ins; the latest registration for a type wins.
    """
    if not (isinstance(materializer_cls, type) and issubclass(materializer_cls, BaseMaterializer)):
        raise ConfigurationError(
            f"register_materializer expects a BaseMaterializer subclass, got {materializer_cls!r}"
        )
    types = types or materializer_cls.ASSOCIATED_TYPES
    if not types or not all(isinstance(data_type, type) for data_type in types):
        raise ConfigurationError(
            f"register_materializer({materializer_cls.__qualname__}) needs classes to register "
            f"for: pass them or set ASSOCIATED_TYPES (got {types!r})"
        )
    with _lock:
        for data_type in types:
            _registered[data_type] = materializer_cls
        _resolved.clear()


def materializer_for(data_type: Any, value: Any = _MISSING) -> type[BaseMaterializer]:
    """The materializer for an output annotated `data_type` whose value is `value`.

    A concrete class annotation decides; `Any`, unions and generics defer to `type(value)`.
    """
    for candidate in (data_type, type(value) if value is not _MISSING else None):
        if _is_concrete(candidate):
            try:
                found = _resolved[candidate]
            except KeyError:  # one lookup: another thread may clear the cache meanwhile
                found = _resolve(candidate)
            if found is not None:
                return found
    return CloudpickleMaterializer


def materializer_path(cls: type) -> str:
    """`module:QualName` of `cls`, recorded with an artifact to reload its materializer."""
    return f"{cls.__module__}:{cls.__qualname__}"


def load_materializer_class(path: str) -> type[BaseMaterializer]:
    """The materializer class recorded as `path` by `materializer_path` (imported once)."""
    cls = _by_path.get(path)
    if cls is None:
        try:
            cls = _import(path)
        except Exception as exc:
            raise ArtifactError(
                f"Cannot import materializer '{path}' that wrote this artifact; make the module "
                "importable (install the package or add it to PYTHONPATH)."
            ) from exc
        if not (isinstance(cls, type) and issubclass(cls, BaseMaterializer)):
            raise ArtifactError(f"'{path}' is not a BaseMaterializer subclass.")
        _by_path[path] = cls
    return cls


def _is_concrete(candidate: Any) -> TypeGuard[type]:
    return (
        isinstance(candidate, type)
        and candidate is not object
        and not isinstance(candidate, GenericAlias)  # list[int] passes isinstance() on 3.10
    )


def _resolve(data_type: type) -> type[BaseMaterializer] | None:
    """Walk the MRO of `data_type`; loads lazy built-ins and entry points when needed."""
    global _entry_points_loaded
    if _pending_lazy:
        _load_lazy()
    found = _lookup(data_type)
    if found is None and not _entry_points_loaded:
        with _lock:
            if not _entry_points_loaded:
                _load_entry_points()
                _entry_points_loaded = True
                _resolved.clear()
        found = _lookup(data_type)
    _resolved[data_type] = found
    return found


def _lookup(data_type: type) -> type[BaseMaterializer] | None:
    for cls in data_type.__mro__:
        found = _registered.get(cls) or _builtin.get(cls) or _plugins.get(cls)
        if found is not None:
            return found
    return None


def _load_lazy() -> None:
    with _lock:
        for module in [name for name in _pending_lazy if name in sys.modules]:
            cls = _import(_pending_lazy.pop(module))
            _builtin.update(dict.fromkeys(cls.ASSOCIATED_TYPES, cls))


def _load_entry_points() -> None:
    from importlib.metadata import entry_points  # costs ~30 ms: only paid on a lookup miss

    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = entry_point.load()
            _plugins.update(dict.fromkeys(cls.ASSOCIATED_TYPES, cls))
        except Exception as exc:  # one broken plugin must not break every run
            warnings.warn(
                f"Skipping materializer entry point '{entry_point.name}' "
                f"({entry_point.value}): {exc!r}",
                stacklevel=2,
            )


def _import(path: str) -> Any:
    module_name, _, qualname = path.partition(":")
    found: Any = importlib.import_module(module_name)
    for attribute in qualname.split("."):
        found = getattr(found, attribute)
    return found
