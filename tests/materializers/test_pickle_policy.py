"""Unpickling is opt-in outside runs: a pickled artifact loads inside its pipeline's runs and in
the process that wrote it; any other process must allow it, and a pickle changed in the
artifact store is refused even then. A user's script runs as a real `python script.py`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from branchwork import Client, pipeline, step
from branchwork.artifact_stores.inline import is_inline
from branchwork.exceptions import ArtifactError
from processes import Spawned, python, python_env

SCRIPT = """
import sys
from branchwork import pipeline, step
from branchwork.artifact_stores.inline import INLINE_LIMIT
from branchwork.orchestrators import LocalProcessOrchestrator
from branchwork.stack import Stack, active_stack, get_active_stack

class Point:
    def __init__(self, x):
        self.x = x
        self.label = "p" * INLINE_LIMIT  # a pickle this big is a file in the artifact store

@step
def make(x: int) -> Point:
    return Point(x)

@step
def read(p: Point) -> int:
    return p.x * 10  # a step process unpickles what another step process pickled

@pipeline(enable_cache=False)
def points(x: int):
    p = make(x)
    return read(p), p

if __name__ == "__main__":
    stack = Stack("lp", LocalProcessOrchestrator(), get_active_stack().artifact_store)
    with active_stack(stack):
        tens, point = points(x=7)  # the pipeline's own value loads in the process that ran it
    print("result", points.last_run.name, tens, type(point).__name__, point.x)
"""

REFUSED = "Refusing to unpickle the artifact at "


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A run on `local_process` (every step in its own process) that pickled a Point."""
    project = tmp_path_factory.mktemp("project")
    home = project / "home"
    (project / "points.py").write_text(SCRIPT)
    with Spawned(python(str(project / "points.py")), env=python_env(home), cwd=project) as run:
        code, out, err = run.wait(120)
    assert code == 0, err
    run_name, tens, type_name, x = out.split("result ")[1].split()
    assert (tens, type_name, x) == ("70", "Point", "7")
    return home, run_name


@pytest.fixture
def pickled_point(written, monkeypatch):
    home, run_name = written
    monkeypatch.setenv("BRANCHWORK_HOME", str(home))
    return Client().get_pipeline_run(run_name).steps["make"].outputs["output"]


def test_another_process_must_allow_unpickling(pickled_point):
    with pytest.raises(ArtifactError) as refused:
        pickled_point.load()
    assert str(refused.value) == (
        f"{REFUSED}{pickled_point.uri}: it is stored as a pickle, and unpickling runs code from "
        "the artifact store. If you trust whoever can write there, allow it: "
        "`load(allow_pickle=True)`, `branchwork artifacts load --allow-pickle`, or "
        "BRANCHWORK_ALLOW_PICKLE=1."
    )
    assert pickled_point.load(allow_pickle=True).x == 7


def test_the_environment_can_allow_unpickling(pickled_point, monkeypatch):
    monkeypatch.setenv("BRANCHWORK_ALLOW_PICKLE", "1")
    assert pickled_point.load().x == 7
    monkeypatch.setenv("BRANCHWORK_ALLOW_PICKLE", "0")
    with pytest.raises(ArtifactError, match=REFUSED):
        pickled_point.load()


def test_a_pickle_changed_in_the_store_is_refused_even_when_allowed(written, pickled_point):
    from branchwork.artifact_stores import artifact_store_for_uri

    assert not is_inline(pickled_point.uri)
    store = artifact_store_for_uri(pickled_point.uri)
    path = store.join(pickled_point.uri, "data.pkl")
    original = store.read_bytes(path)
    store.write_bytes(path, original.replace(b"Point", b"Poinu"))
    try:
        with pytest.raises(ArtifactError, match="no longer match the content hash recorded"):
            pickled_point.load(allow_pickle=True)
    finally:
        store.write_bytes(path, original)
    assert pickled_point.load(allow_pickle=True).x == 7


class Box:
    def __init__(self, size: int) -> None:
        self.size = size


@step
def box(size: int) -> Box:
    return Box(size)


@pipeline(enable_cache=False)
def boxes():
    return box(3)


def test_the_process_that_wrote_a_pickle_loads_it(recwarn):
    assert boxes().size == 3
    output = boxes.last_run.steps["box"].outputs["output"]
    assert output.load().size == 3  # written by this process (the local orchestrator's threads)


def test_the_cli_refuses_then_loads_with_allow_pickle(written):
    home, run_name = written
    command = [sys.executable, "-m", "branchwork.cli", "artifacts", "load", f"{run_name}/make"]
    env = python_env(home)
    refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    assert REFUSED in refused.stderr and "--allow-pickle" in refused.stderr
    allowed = subprocess.run(
        [*command, "--allow-pickle"], env=env, capture_output=True, text=True, timeout=60
    )
    assert allowed.returncode == 0, allowed.stderr
    assert "Point object at" in allowed.stdout
