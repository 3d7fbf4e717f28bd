"""Which materializer stores a value, and re-finding the one that wrote an artifact.

Lookup order for each class of the type's MRO: `register_materializer` registrations, then
the built-ins, then `branchwork.materializers` entry points (loaded on the first miss);
then the dataclass materializer for a dataclass; the cloudpickle fallback when nothing
matches. Before any of these, a lazily loaded materializer may claim a value of a built-in
container (`BaseMaterializer.claims`: a dict of tensors is a PyTorch state_dict), unless the
value's type is registered.
"""

from __future__ import annotations

import dataclasses
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
from branchwork.materializers.dataclass_materializer import DataclassMaterializer
from branchwork.user_code import find_recorded, recorded_module

ENTRY_POINT_GROUP = "branchwork.materializers"

_MISSING: Final = object()
# Materializers for types of libraries we must not import: added once the library is loaded,
# since a value of its types cannot exist before.
_LAZY = {
    "numpy": "branchwork.materializers.numpy_materializer:NumpyMaterializer",
    "pandas": "branchwork.materializers.pandas_materializer:PandasMaterializer",
    # Submodules where a value's module is lighter than the package: no Image or Figure
    # exists before PIL.Image or matplotlib.figure is imported.
    "PIL.Image": "branchwork.materializers.pil_materializer:PilImageMaterializer",
    "matplotlib.figure": (
        "branchwork.materializers.matplotlib_materializer:MatplotlibFigureMaterializer"
    ),
    "torch": "branchwork.materializers.torch_materializer:TorchMaterializer",
    "sklearn": "branchwork.materializers.sklearn_materializer:SklearnMaterializer",
    "polars": "branchwork.materializers.polars_materializer:PolarsMaterializer",
    "pyarrow": "branchwork.materializers.pyarrow_materializer:PyarrowTableMaterializer",
    "pydantic": "branchwork.materializers.pydantic_materializer:PydanticMaterializer",
    "pathlib": "branchwork.materializers.path_materializer:PathMaterializer",
}

_registered: dict[type, type[BaseMaterializer]] = {}
_builtin: dict[type, type[BaseMaterializer]] = {
    data_type: cls
    for cls in (BuiltinMaterializer, CollectionMaterializer, BytesMaterializer)
    for data_type in cls.ASSOCIATED_TYPES
}
_plugins: dict[type, type[BaseMaterializer]] = {}
_claims: dict[type, list[type[BaseMaterializer]]] = {}  # container type -> who may claim values
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
    if value is not _MISSING:
        claimed = _claimed(value)
        if claimed is not None:
            return claimed
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
    """`module:QualName` of `cls`, recorded with an artifact to reload its materializer
    (interned: a run holds one per output)."""
    return sys.intern(f"{recorded_module(cls.__module__)}:{cls.__qualname__}")


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
        if not path.startswith("__main__:"):  # a script's: another may be loaded later
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
    if found is None and dataclasses.is_dataclass(data_type):
        found = DataclassMaterializer  # dataclasses share no base class to register it for
    _resolved[data_type] = found
    return found


def _lookup(data_type: type) -> type[BaseMaterializer] | None:
    for cls in data_type.__mro__:
        found = _registered.get(cls) or _builtin.get(cls) or _plugins.get(cls)
        if found is not None:
            return found
    return None


def _claimed(value: Any) -> type[BaseMaterializer] | None:
    """The lazily loaded materializer that claims `value`, of a built-in container, if any."""
    if _pending_lazy:
        _load_lazy()
    if type(value) in _claims and type(value) not in _registered:
        for cls in _claims[type(value)]:
            if cls.claims(value):
                return cls
    return None


def _load_lazy() -> None:
    # The common case, on every output (see _claimed), takes no lock: a copy of the names,
    # since another thread may be loading one meanwhile.
    if not any(map(sys.modules.__contains__, tuple(_pending_lazy))):
        return
    with _lock:
        for module in [name for name in _pending_lazy if name in sys.modules]:
            path = _pending_lazy.pop(module)
            try:
                cls = _import(path)
            except ImportError as exc:  # the library is here, not what its materializer needs
                warnings.warn(
                    f"{module} values will be stored as cloudpickles: their materializer "
                    f"{path} needs {exc.name or exc}, which is not installed (install "
                    f"branchwork's extra for {module.partition('.')[0]}).",
                    stacklevel=2,
                )
                continue
            _builtin.update(dict.fromkeys(cls.ASSOCIATED_TYPES, cls))
            for data_type in cls.CLAIMED_TYPES:
                _claims.setdefault(data_type, []).append(cls)


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
    return find_recorded(module_name, qualname)
