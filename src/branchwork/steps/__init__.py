"""Steps: the decorator, output declarations and the running step's context."""

from branchwork.steps.context import StepContext, get_step_context
from branchwork.steps.step import Step, step, unmapped

__all__ = ["Step", "StepContext", "get_step_context", "step", "unmapped"]
