"""Fixtures for the dashboard's tests: real pipeline runs in the test's store, and the real
app behind FastAPI's TestClient (on 127.0.0.1: without a token the dashboard answers
loopback hosts only)."""

from __future__ import annotations

import sys
import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

PIPELINES = '''
from pathlib import Path
import time

from branchwork import log_metadata, pipeline, step, wait


@step
def count(n: int) -> int:
    return n


@step
def work(i: int, folder: str) -> int:
    print(f"<script>alert({i})</script> item {i}")
    log_metadata({"item": i})
    if Path(folder, f"fail-{i}").exists():
        raise ValueError(f"<img src=x onerror=alert({i})> item {i} failed\\nsecond line")
    return i * 2


@step
def total(values: list) -> int:
    return sum(values)


@step
def gate(folder: str, i: int) -> int:
    """Waits (bounded) until the test creates the file go-<i>."""
    deadline = time.monotonic() + 60
    while not Path(folder, f"go-{i}").exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"go-{i} never appeared")
        time.sleep(0.02)
    return i


@pipeline
def fan(folder: str, n: int = 4):
    """count -> n x work (through the value of count) -> total."""
    return total([work(i, folder) for i in range(count(n))])


@pipeline(dynamic=False)
def chain(folder: str):
    return total([work(i, folder) for i in range(3)])


@pipeline
def drip(folder: str, n: int = 3):
    """One gate at a time: each is discovered once the previous one's value is read."""
    done = 0
    for i in range(n):
        done += int(gate(folder, i))
    return done


@step
def deploy(target: str) -> str:
    return f"deployed to {target}"


@pipeline
def asks():
    """Pauses for an answer, which after a second is the default."""
    return deploy(wait("Where to?", str, timeout=1, default="staging"))


@pipeline
def approve():
    """Pauses for a yes or no, for an hour at most (then it is no)."""
    ship = wait("Ship it?", bool, timeout=3600, default=False)
    return deploy("prod" if ship else "nowhere")


@pipeline
def nest(folder: str):
    """chain as a child run."""
    return chain.submit(folder)
'''


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """The folder of a user's project, holding dash_pipelines.py (the pipelines above)."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "dash_pipelines.py").write_text(textwrap.dedent(PIPELINES))
    return folder


@pytest.fixture
def pipelines(project) -> Callable[[str], Any]:
    """`pipelines("fan")`: that pipeline, imported from its file as `branchwork run` does."""
    from branchwork.cli.targets import load_target

    return lambda name: load_target(f"{project / 'dash_pipelines.py'}:{name}")


@pytest.fixture
def api(branchwork_home):
    """`api()`: a TestClient on the dashboard over the test's store (made when called, so
    runs made before are there either way); `api(token=...)` for one with a token."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette: "use httpx2", not installed here
        from fastapi.testclient import TestClient

    from branchwork.dashboard.app import create_app

    def make(token: str | None = None) -> TestClient:
        return TestClient(create_app(token=token), base_url="http://127.0.0.1")

    return make
