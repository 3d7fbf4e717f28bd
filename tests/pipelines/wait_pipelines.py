"""Pipelines that wait for answers (`branchwork.wait`), at module level so that an
orchestration process, and a resume in another process, import them again by their recorded
source. Each step appends its name to `<folder>/executions.log`, so a test sees what ran how
often across processes."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator

from branchwork import pipeline, step, wait
from branchwork.config import StepRetryConfig


def executions(folder: Path) -> Counter[str]:
    log = folder / "executions.log"
    return Counter(log.read_text().splitlines()) if log.exists() else Counter()


def _log(folder: str, line: str) -> None:
    with open(Path(folder, "executions.log"), "a") as handle:
        handle.write(line + "\n")


class Approval(BaseModel):
    approved: bool
    reviewer: str


@step
def prepare(folder: str) -> str:
    _log(folder, "prepare")
    return "model:v17"


@step
def slow_side(folder: str) -> int:
    """Called before a wait and not waited for: it is still running when the run pauses."""
    time.sleep(0.5)
    _log(folder, "slow_side")
    return 7


@step
def register(candidate: str, tag: str) -> str:
    return f"{candidate}@{tag}"


@pipeline
def release(folder: str):
    candidate = prepare(folder)
    tag = wait("Release tag?", schema=str)
    return register(candidate, tag)


@pipeline
def approvals(folder: str):
    candidate = prepare(folder)
    side = slow_side(folder)
    approval = wait("Approve the release?", schema=Approval)
    target = wait("Where to?", schema=Literal["staging", "prod"], id="target")
    tag = f"{target}-{approval.reviewer}-{approval.approved}"
    return register(candidate, tag), side


@pipeline
def timed(folder: str, timeout: float, with_default: bool):
    candidate = prepare(folder)
    if with_default:
        go = wait("Deploy?", schema=bool, timeout=timeout, default=False)
    else:
        go = wait("Deploy?", schema=bool, timeout=timeout)
    return register(candidate, "go" if go else "hold")


@pipeline
def reworded(folder: str):
    """Asks what `<folder>/question.txt` says: a body that changes between sessions."""
    question = Path(folder, "question.txt").read_text()
    return register(prepare(folder), wait(question))


@pipeline
def review(candidate: str) -> str:
    """A child run that waits for a person."""
    approved = wait("Approve the candidate?", schema=bool)
    return register(candidate, "approved" if approved else "rejected")


@step(runtime="isolated")
def slow_apart(folder: str) -> int:
    """In a process of its own where the orchestrator isolates steps: still running when a
    child run pauses, which must let it finish, even in a fail-fast run."""
    time.sleep(1.0)
    _log(folder, "slow_apart")
    return 7


@step
def breaks(folder: str) -> int:
    time.sleep(0.5)
    _log(folder, "breaks")
    raise ValueError("broken on purpose")


@pipeline(retry=StepRetryConfig(max_retries=3, delay=0.01), failure_mode="fail_fast")
def release_train(folder: str):
    """A parent whose child run waits: a retry does not call the waiting child again, and
    failing fast is for failures, not for pauses."""
    side = slow_apart(folder)
    return review(prepare(folder)), side


@pipeline
def outer_train(folder: str):
    """Two levels of child runs above the one that waits."""
    return release_train(folder)


@pipeline
def review_and_break(folder: str, read_first: bool):
    """A step fails while a child run waits: the run fails, for that step."""
    verdict = review.submit("model:v17")
    if read_first:
        return verdict, int(breaks(folder))  # the body waits for the failing step
    return verdict, breaks(folder)


@step
def asks_elsewhere(folder: str) -> str:
    """Calls a pipeline inside a step: a run of its own, not a child run."""
    return review(f"{folder}-candidate")


@pipeline
def step_calls_a_waiting_pipeline(folder: str):
    return asks_elsewhere(folder)


class Reviewed(BaseModel):
    """An answer a JSON schema lets through and the model's own validator refuses."""

    reviewer: str

    @field_validator("reviewer")
    @classmethod
    def known(cls, reviewer: str) -> str:
        if reviewer not in ("ada", "bo"):
            raise ValueError(f"{reviewer!r} is not a reviewer")
        return reviewer


@pipeline
def batches(folder: str):
    size = wait("Batch size (a multiple of 8)?", schema=Annotated[int, Field(multiple_of=8)])
    reviewed = wait("Who reviewed it?", schema=Reviewed, id="reviewed")
    return register(prepare(folder), f"{size}-{reviewed.reviewer}")
