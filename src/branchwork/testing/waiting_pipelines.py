"""The conformance suite's pipelines that wait for an answer (`branchwork.wait`).

At module level, like `branchwork.testing.pipelines`, so that an orchestration process (and
the resume an answer starts) imports them again; side effects go to the file a parameter
names, one line per execution.
"""

from __future__ import annotations

from typing import Any

from branchwork import pipeline, step, wait


@step
def build_candidate(log_path: str) -> str:
    with open(log_path, "a", encoding="utf-8") as log:
        log.write("build_candidate\n")
    return "model:v2"


@step
def release_candidate(candidate: str) -> str:
    return f"released {candidate}"


@pipeline
def approve_release(log_path: str) -> Any:
    """Dynamic: build_candidate, then a yes/no question; release_candidate once approved."""
    candidate = build_candidate(log_path)
    if wait("Release the candidate?", schema=bool):
        return release_candidate(candidate)
    return candidate
