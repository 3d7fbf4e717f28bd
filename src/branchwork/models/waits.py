"""A question a run asked with `branchwork.wait(...)`, and its answer once it has one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class WaitResponse:
    """One `wait(...)` of a run, by its id (`wait`, `wait_2`, ... in the order the body asks,
    or its `id=`). `schema` is the JSON schema answers must match (None: any JSON value);
    `answered_by` says who answered: "answer" (someone, `branchwork runs answer`) or
    "default" (it timed out and took its default)."""

    wait_id: str
    position: int
    question: str
    schema: dict[str, Any] | None
    timeout: float | None  # seconds from `asked`
    has_default: bool
    default: Any
    asked: datetime  # naive UTC, like every time in the store
    answer: Any = None
    answered: datetime | None = None
    answered_by: str | None = None

    @property
    def is_answered(self) -> bool:
        return self.answered is not None

    @property
    def deadline(self) -> datetime | None:
        """When it stops waiting (naive UTC), if it has a timeout."""
        return None if self.timeout is None else self.asked + timedelta(seconds=self.timeout)

    def timed_out(self, now: datetime) -> bool:
        deadline = self.deadline
        return not self.is_answered and deadline is not None and now >= deadline
