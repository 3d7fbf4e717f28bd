"""Pipelines that wait for answers (`branchwork.wait`), at module level so that an
orchestration process, and a resume in another process, import them again by their recorded
source. Each step appends its name to `<folder>/executions.log`, so a test sees what ran how
often across processes."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

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


@pipeline(retry=StepRetryConfig(max_retries=3, delay=0.01))
def release_train(folder: str):
    """A parent whose child run waits: a retry does not call the waiting child again."""
    side = slow_side(folder)
    return review(prepare(folder)), side


@pipeline
def outer_train(folder: str):
    """Two levels of child runs above the one that waits."""
    return release_train(folder)
