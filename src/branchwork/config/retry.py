"""How often, and how patiently, a failed step is tried again."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from branchwork.exceptions import ConfigurationError


@dataclass(frozen=True)
class StepRetryConfig:
    """Retry a failed step up to `max_retries` times, waiting `delay * backoff**k` seconds."""

    max_retries: int = 0
    delay: float = 0.0
    backoff: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise ConfigurationError(
                f"StepRetryConfig.max_retries must be a whole number, got {self.max_retries!r}"
            )
        if self.max_retries < 0:
            raise ConfigurationError(
                f"StepRetryConfig.max_retries must not be negative, got {self.max_retries}"
            )
        # NaN passes every comparison's `not`: a NaN delay waited forever (`retrying in nans`)
        if not _finite_number(self.delay) or self.delay < 0:
            raise ConfigurationError(
                f"StepRetryConfig.delay must be a finite number of seconds, not negative, "
                f"got {self.delay!r}"
            )
        if not _finite_number(self.backoff) or self.backoff < 1:
            raise ConfigurationError(
                f"StepRetryConfig.backoff must be a finite number of at least 1, "
                f"got {self.backoff!r}"
            )

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before `attempt` (2 is the first retry)."""
        return self.delay * self.backoff ** max(0, attempt - 2)

    def to_dict(self) -> dict[str, float]:
        return {"max_retries": self.max_retries, "delay": self.delay, "backoff": self.backoff}


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_retry(value: Any, where: str) -> StepRetryConfig | None:
    """`retry=` in Python takes a StepRetryConfig (a run configuration file's mapping is built
    into one there): anything else would fail only when a step is recorded."""
    if value is not None and not isinstance(value, StepRetryConfig):
        raise ConfigurationError(
            f"{where} must be a StepRetryConfig, e.g. StepRetryConfig(max_retries=3), got {value!r}"
        )
    return value
