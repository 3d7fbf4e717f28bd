"""Concurrency limits: how many invocations of a step, or of a group of steps, run at once.

`@step(max_concurrency=5)` caps one step's invocations. A limit several steps share — say,
every step that calls one rate-limited API — is named on each step,
`@step(concurrency_limit="openai")`, and sized by the run: `@pipeline(concurrency_limits=
{"openai": 8})`, `.with_options(concurrency_limits=...)` or `concurrency_limits:` in a run
configuration file. The size belongs to the run rather than the step because it is a fact
about where the run goes (the account's quota, the service's tier), and the same steps serve
pipelines with different quotas. The engine admits a step only when a slot of each of its
limits is free (`runtime.admission`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from branchwork.exceptions import ConfigurationError, StepInvocationError

if TYPE_CHECKING:
    from branchwork.steps.step import Step

Limits = tuple[tuple[str, int], ...]  # (limit, how many may run at once), as the engine takes


def check_size(value: Any, where: str) -> int:
    """A limit's size: an int of at least 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{where} must be a whole number of at least 1, got {value!r}")
    return value


def check_limit_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{where} must be a non-empty string, got {value!r}")
    return value


def check_limits(limits: Any, where: str) -> dict[str, int]:
    """A run's named limits: {name: size}."""
    if not isinstance(limits, Mapping):
        raise ConfigurationError(
            f"{where} must be a mapping of limit names to sizes, got {type(limits).__name__}"
        )
    return {
        check_limit_name(name, f"{where}: a limit name"): check_size(size, f"{where}['{name}']")
        for name, size in limits.items()
    }


def step_limits(step: Step[Any, Any], run_limits: Mapping[str, int], pipeline_name: str) -> Limits:
    """The limits an invocation of `step` counts against in a run with `run_limits`."""
    limits: list[tuple[str, int]] = []
    if step.max_concurrency is not None:
        limits.append((f"step:{step.name}", step.max_concurrency))
    name = step.concurrency_limit
    if name is not None:
        if name not in run_limits:
            raise StepInvocationError(
                f"Pipeline '{pipeline_name}': step '{step.name}' counts against concurrency "
                f"limit '{name}', which this run does not size; pass "
                f"concurrency_limits={{{name!r}: N}} to @pipeline or .with_options() "
                f"(sized here: {sorted(run_limits) or 'none'})."
            )
        limits.append((name, run_limits[name]))
    return tuple(limits)
