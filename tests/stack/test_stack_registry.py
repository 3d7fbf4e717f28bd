"""The stack registry: components and stacks in the metadata store, the active stack, and
the built-in default."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import stack_pipelines as sp

from branchwork.artifact_stores import FsspecArtifactStore, LocalArtifactStore
from branchwork.exceptions import BranchworkError, ConfigurationError
from branchwork.orchestrators import LocalOrchestrator, LocalProcessOrchestrator
from branchwork.stack import (
    Stack,
    active_stack,
    components,
    default_stack,
    get_active_stack,
    stacks,
)


def test_only_the_builtin_default_exists_at_first(branchwork_home):
    listed = stacks.list_stacks()
    assert [(s.name, s.active, s.builtin) for s in listed] == [("default", True, True)]
    default = listed[0]
    assert (default.orchestrator.name, default.orchestrator.flavor) == ("default", "local")
    assert default.artifact_store.location == str(branchwork_home / "artifacts")
    assert [c.name for c in components.list_components()] == ["default", "default"]
    stack = get_active_stack()
    assert stack.name == "default" and isinstance(stack.orchestrator, LocalOrchestrator)


def test_register_components_and_a_stack_round_trip(tmp_path):
    orchestrator = components.register_orchestrator(
        "lp", "local_process", {"max_workers": 3, "failure_mode": "fail_fast"}
    )
    assert orchestrator.config == {"max_workers": 3, "failure_mode": "fail_fast"}
    store = components.register_artifact_store("disk", path=tmp_path / "artifacts")
    assert store.flavor == "local" and store.config == {"path": str(tmp_path / "artifacts")}
    remote = components.register_artifact_store("mem", url="memory://bw-tests/")
    assert remote.flavor == "fsspec" and remote.config == {"url": "memory://bw-tests"}

    stacks.register_stack("proc", "lp", "disk")
    stacks.register_stack("remote", "default", "mem")
    described = stacks.describe_stack("proc")
    assert described.orchestrator == orchestrator
    assert described.artifact_store.location == str(tmp_path / "artifacts")
    assert [s.name for s in stacks.list_stacks()] == ["default", "proc", "remote"]
    assert [c.name for c in components.list_components("orchestrator")] == ["default", "lp"]
    assert [c.name for c in components.list_components("artifact_store")] == [
        "default",
        "disk",
        "mem",
    ]

    built = stacks.get_stack("proc")
    assert isinstance(built.orchestrator, LocalProcessOrchestrator)
    assert built.orchestrator.max_workers == 3
    assert built.orchestrator.failure_mode.value == "fail_fast"
    assert isinstance(built.artifact_store, LocalArtifactStore)
    assert built.artifact_store.root == str(tmp_path / "artifacts")
    remote_stack = stacks.get_stack("remote")
    assert isinstance(remote_stack.orchestrator, LocalOrchestrator)
    assert isinstance(remote_stack.artifact_store, FsspecArtifactStore)
    # what an orchestration process rebuilds from the environment is the same stack
    again = Stack.from_json(built.to_json())
    assert again.orchestrator.config == built.orchestrator.config


def test_a_relative_path_is_made_absolute_at_registration(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = components.register_artifact_store("here", path="rel/artifacts")
    assert store.config["path"] == str(tmp_path / "rel" / "artifacts")


@pytest.mark.parametrize(
    ("flavor", "config", "fragments"),
    [
        ("nope", {}, ["Unknown orchestrator flavor 'nope'", "local_process"]),
        ("local_process", {"max_wrokers": 2}, ["unknown setting 'max_wrokers'", "max_workers"]),
        ("local_process", {"cpu_count": "lots"}, ["setting 'cpu_count' = 'lots'", "float"]),
        ("local", {"max_workers": -2}, ["setting 'max_workers' = -2", "at least 1"]),
        ("local", {"failure_mode": "sometimes"}, ["setting 'failure_mode'", "sometimes"]),
        ("local", {"memory": "heaps"}, ["setting 'memory' = 'heaps'"]),
    ],
)
def test_bad_orchestrator_settings_fail_at_registration_naming_the_key(flavor, config, fragments):
    with pytest.raises(ConfigurationError) as info:
        components.register_orchestrator("bad", flavor, config)
    for fragment in fragments:
        assert fragment in str(info.value)
    assert [c.name for c in components.list_components("orchestrator")] == ["default"]


def test_bad_artifact_stores_are_refused():
    with pytest.raises(ConfigurationError, match="exactly one"):
        components.register_artifact_store("x")
    with pytest.raises(ConfigurationError, match="not a URL"):
        components.register_artifact_store("x", url="just/a/path")
    with pytest.raises(ConfigurationError, match="is a URL"):
        components.register_artifact_store("x", path="s3://bucket/x")
    with pytest.raises(ConfigurationError, match="cannot open 'nosuchproto://x'"):
        components.register_artifact_store("x", url="nosuchproto://x")


def test_names_are_unique_and_default_is_reserved():
    components.register_orchestrator("lp", "local_process")
    with pytest.raises(BranchworkError, match="already registered"):
        components.register_orchestrator("lp", "local")
    stacks.register_stack("s", "lp")
    with pytest.raises(BranchworkError, match="stack named 's' is already registered"):
        stacks.register_stack("s", "lp")
    for register in (
        lambda: components.register_orchestrator("default", "local"),
        lambda: components.register_artifact_store("default", path="/tmp/x"),
        lambda: stacks.register_stack("default", "lp"),
    ):
        with pytest.raises(ConfigurationError, match="reserved"):
            register()


def test_a_stack_needs_registered_components():
    with pytest.raises(BranchworkError, match="No orchestrator named 'ghost'; registered: default"):
        stacks.register_stack("s", "ghost")
    components.register_orchestrator("lp", "local_process")
    with pytest.raises(BranchworkError, match="No artifact store named 'ghost'"):
        stacks.register_stack("s", "lp", "ghost")
    assert [s.name for s in stacks.list_stacks()] == ["default"]


def test_delete_refuses_components_in_use_naming_the_stacks(tmp_path):
    components.register_orchestrator("lp", "local_process")
    components.register_artifact_store("disk", path=tmp_path)
    stacks.register_stack("b", "lp", "disk")
    stacks.register_stack("a", "lp")
    with pytest.raises(BranchworkError, match="orchestrator 'lp' is used by stacks 'a', 'b'"):
        components.delete_component("orchestrator", "lp")
    with pytest.raises(BranchworkError, match="artifact store 'disk' is used by stack 'b'"):
        components.delete_component("artifact_store", "disk")
    with pytest.raises(BranchworkError, match="cannot be deleted"):
        components.delete_component("artifact_store", "default")
    with pytest.raises(BranchworkError, match="default stack cannot be deleted"):
        stacks.delete_stack("default")

    stacks.delete_stack("a")
    stacks.delete_stack("b")
    with pytest.raises(BranchworkError, match="No stack named 'b'"):
        stacks.delete_stack("b")
    components.delete_component("orchestrator", "lp")
    components.delete_component("artifact_store", "disk")
    assert [c.name for c in components.list_components()] == ["default", "default"]


def test_the_active_stack_is_stored_and_cannot_be_deleted():
    components.register_orchestrator("lp", "local_process", {"max_workers": 2})
    stacks.register_stack("proc", "lp")
    assert stacks.set_active_stack("proc").active
    assert stacks.get_active_stack_name() == "proc"
    assert [s.name for s in stacks.list_stacks() if s.active] == ["proc"]
    assert stacks.describe_stack().name == "proc"  # no name: the active one
    with pytest.raises(BranchworkError, match="is the active stack"):
        stacks.delete_stack("proc")
    with pytest.raises(BranchworkError, match="No stack named 'ghost'"):
        stacks.set_active_stack("ghost")
    stacks.set_active_stack("default")
    assert stacks.get_active_stack_name() == "default"
    stacks.delete_stack("proc")


def test_get_active_stack_prefers_the_block_then_the_registry_then_the_default():
    assert get_active_stack().name == "default"
    components.register_orchestrator("lp", "local_process")
    stacks.register_stack("proc", "lp")
    stacks.set_active_stack("proc")
    stack = get_active_stack()
    assert stack.name == "proc" and isinstance(stack.orchestrator, LocalProcessOrchestrator)
    scoped = default_stack()
    with active_stack(scoped):
        assert get_active_stack() is scoped
    assert get_active_stack().name == "proc"


def test_a_pipeline_runs_on_the_registered_active_stack():
    components.register_orchestrator("lp", "local_process", {"max_workers": 2})
    stacks.register_stack("proc", "lp")
    stacks.set_active_stack("proc")
    pid = sp.report_pid()
    run = sp.report_pid.last_run
    assert run.status == "completed" and run.orchestrator == "local_process"
    assert pid != os.getpid()  # the orchestration process ran the (inline) step

    stacks.set_active_stack("default")
    assert sp.report_pid.with_options(enable_cache=False)() == os.getpid()
    assert sp.report_pid.last_run.orchestrator == "local"


def test_the_registry_is_loaded_on_first_use_only():
    code = (
        "import sys, branchwork.stack; "
        "from branchwork.stack import Stack; "
        "assert 'branchwork.stack.stacks' not in sys.modules; "
        "from branchwork.stack import list_stacks; "
        "print(list_stacks.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "branchwork.stack.stacks"
