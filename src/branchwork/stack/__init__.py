"""Stacks: an orchestrator and an artifact store, which stack is active, and the registry of
stacks and components in the metadata store (`components`, `stacks`; loaded on first use so
that importing this package does not load SQLAlchemy)."""

from typing import Any

from branchwork.stack.active import active_stack, get_active_stack
from branchwork.stack.stack import Stack, default_stack

_REGISTRY = {
    "delete_component": "components",
    "list_components": "components",
    "register_artifact_store": "components",
    "register_orchestrator": "components",
    "delete_stack": "stacks",
    "describe_stack": "stacks",
    "get_stack": "stacks",
    "list_stacks": "stacks",
    "register_stack": "stacks",
    "set_active_stack": "stacks",
}

__all__ = ["Stack", "active_stack", "default_stack", "get_active_stack", *_REGISTRY]


def __getattr__(name: str) -> Any:
    if name in _REGISTRY:
        from importlib import import_module

        return getattr(import_module(f"branchwork.stack.{_REGISTRY[name]}"), name)
    raise AttributeError(f"module 'branchwork.stack' has no attribute {name!r}")
