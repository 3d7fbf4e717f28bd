"""Finding orchestrator classes by flavor: built-ins plus the `branchwork.orchestrators`
entry points, loaded on demand (the one extension mechanism)."""

from __future__ import annotations

import functools
import importlib
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from branchwork.exceptions import BranchworkError, ConfigurationError

if TYPE_CHECKING:
    from branchwork.orchestrators.base import BaseOrchestrator

_BUILT_IN = {
    "local": "branchwork.orchestrators.local:LocalOrchestrator",
    "local_process": "branchwork.orchestrators.local_process:LocalProcessOrchestrator",
    "ray": "branchwork.orchestrators.ray:RayOrchestrator",
}


@functools.lru_cache(maxsize=1)
def available_flavors() -> dict[str, str]:
    """Flavor name -> "module:Class", entry points first, built-ins winning on clashes."""
    found = {ep.name: ep.value for ep in entry_points(group="branchwork.orchestrators")}
    return {**found, **_BUILT_IN}


def orchestrator_class(flavor: str, fallback_path: str | None = None) -> type[BaseOrchestrator]:
    """The class of `flavor`; `fallback_path` ("module:Class") for unregistered ones."""
    path = available_flavors().get(flavor) or fallback_path
    if path is None:
        raise ConfigurationError(
            f"Unknown orchestrator flavor {flavor!r}; available: "
            f"{', '.join(sorted(available_flavors()))}."
        )
    module_name, _, attribute = path.partition(":")
    cls: type[BaseOrchestrator] = getattr(importlib.import_module(module_name), attribute)
    return cls


def orchestrator_from_config(
    spec: dict[str, Any], name: str | None, config: dict[str, Any]
) -> BaseOrchestrator:
    """Rebuild an orchestrator from its stack description (flavor, class path, settings)."""
    flavor = spec["flavor"]
    try:
        cls = orchestrator_class(flavor, spec.get("class"))
        return cls(name, **config)
    except ConfigurationError:
        raise
    except (TypeError, ValueError, ImportError, AttributeError, BranchworkError) as error:
        raise ConfigurationError(
            f"Orchestrator flavor {flavor!r} cannot be built with {config}: {error}"
        ) from None
