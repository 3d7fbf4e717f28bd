"""Processes that open one new store at the same instant, as a team's jobs do on first use.

Each child imports branchwork, says it is ready, waits for a shared start file, then opens the
store (migrating it if it is empty) and runs a tiny pipeline into it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from branchwork.metadata import store

TIMEOUT = 120.0

CHILD = """
import sys
import time
from pathlib import Path

from branchwork import pipeline, step
from branchwork.metadata import store


@step
def one() -> int:
    return 1


@step
def plus_one(x: int) -> int:
    return x + 1


@pipeline
def tiny():
    return plus_one(one())


start, ready = Path(sys.argv[1]), Path(sys.argv[2])
ready.touch()
while not start.exists():
    time.sleep(0.001)
store.get_engine()
assert tiny() == 2
"""


def open_at_once(url: str, processes: int, folder: Path) -> list[tuple[int | None, str]]:
    """Start `processes` children on the store at `url`, release them together, and return
    each one's exit code (None if it outlived TIMEOUT and was killed) and standard error."""
    script = folder / "open_store.py"
    script.write_text(CHILD)
    start = folder / "start"
    env = {**os.environ, "BRANCHWORK_STORE_URL": url}
    children: list[subprocess.Popen[str]] = []
    try:
        for index in range(processes):
            command = [sys.executable, str(script), str(start), str(folder / f"ready-{index}")]
            children.append(subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True))
        deadline = time.monotonic() + TIMEOUT
        _wait_until_ready(children, folder, deadline)
        start.touch()
        return [_outcome(child, deadline) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


def _wait_until_ready(children: list[subprocess.Popen[str]], folder: Path, deadline: float) -> None:
    # A child that died while importing will never be ready: its exit code tells the story.
    while time.monotonic() < deadline and all(child.poll() is None for child in children):
        if len(list(folder.glob("ready-*"))) == len(children):
            return
        time.sleep(0.01)


def _outcome(child: subprocess.Popen[str], deadline: float) -> tuple[int | None, str]:
    try:
        _, stderr = child.communicate(timeout=max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired:
        child.kill()
        _, stderr = child.communicate()
        return None, stderr
    return child.returncode, stderr


def failures(outcomes: list[tuple[int | None, str]]) -> list[str]:
    """The standard error of every child that did not exit 0."""
    return [f"exit {code}: {stderr}" for code, stderr in outcomes if code != 0]


def revision_and_completed_runs(url: str) -> tuple[str | None, int]:
    """What the store holds afterwards: its schema revision and its number of completed runs."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            completed = conn.execute(
                text("SELECT COUNT(*) FROM pipeline_run WHERE status = 'completed'")
            ).scalar_one()
        return store.current_revision(engine), completed
    finally:
        engine.dispose()
