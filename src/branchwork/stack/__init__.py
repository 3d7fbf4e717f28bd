"""Stacks: an orchestrator and an artifact store, and which stack is active."""

from branchwork.stack.stack import Stack, active_stack, get_active_stack

__all__ = ["Stack", "active_stack", "get_active_stack"]
