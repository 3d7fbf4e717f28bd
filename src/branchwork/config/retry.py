"""How often, and how patiently, a failed step is tried again."""

from __future__ import annotations

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
        if self.delay < 0:
            raise ConfigurationError(
                f"StepRetryConfig.delay must not be negative, got {self.delay}"
            )
        if self.backoff < 1:
            raise ConfigurationError(
                f"StepRetryConfig.backoff must be at least 1, got {self.backoff}"
            )

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before `attempt` (2 is the first retry)."""
        return self.delay * self.backoff ** max(0, attempt - 2)

    def to_dict(self) -> dict[str, float]:
        return {"max_retries": self.max_retries, "delay": self.delay, "backoff": self.backoff}


def check_retry(value: Any, where: str) -> StepRetryConfig | None:
    """`retry=` in Python takes a StepRetryConfig (a run configuration file's mapping is built
    into one there): anything else would fail only when a step is recorded."""
    if value is not None and not isinstance(value, StepRetryConfig):
        raise ConfigurationError(
            f"{where} must be a StepRetryConfig, e.g. StepRetryConfig(max_retries=3), got {value!r}"
        )
    return value
