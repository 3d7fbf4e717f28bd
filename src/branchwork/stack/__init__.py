"""Stacks: an orchestrator and an artifact store, which stack is active, and the registry of
stacks and components in the metadata store (`branchwork.stack.registry`, loaded on first use
so that importing this package does not load SQLAlchemy)."""

from typing import Any

from branchwork.stack.stack import Stack, active_stack, default_stack, get_active_stack

_REGISTRY = (
    "delete_component",
    "delete_stack",
    "describe_stack",
    "get_stack",
    "list_components",
    "list_stacks",
    "register_artifact_store",
    "register_orchestrator",
    "register_stack",
    "set_active_stack",
)

__all__ = ["Stack", "active_stack", "default_stack", "get_active_stack", *_REGISTRY]


def __getattr__(name: str) -> Any:
    if name in _REGISTRY:
        from branchwork.stack import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'branchwork.stack' has no attribute {name!r}")
