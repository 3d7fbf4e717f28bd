"""The fsspec artifact store on a real S3 server (SeaweedFS on loopback, conftest.py): a
team's settings on the store (endpoint, region, key id, where the secret is), pipelines on
`local` and `local_process` whose outputs land in the bucket (those over INLINE_LIMIT; the
small ones in the metadata store), and the secret kept out of everything branchwork writes."""

from __future__ import annotations

import ast
import json
import multiprocessing
import os
import pickle
import re
import subprocess
import sys
import traceback
import uuid
from pathlib import Path

import pytest
import s3_pipelines as sp
from typer.testing import CliRunner

from branchwork import Client
from branchwork.artifact_stores import FsspecArtifactStore, artifact_store_for_uri
from branchwork.artifact_stores.inline import inline_uri
from branchwork.cli.app import app
from branchwork.exceptions import ConfigurationError, PipelineRunFailedError
from branchwork.materializers import (
    CollectionMaterializer,
    load_artifact,
    materializer_path,
    save_artifact,
)
from branchwork.runtime.envelopes import request_to_json
from branchwork.runtime.step_execution import StepRequest
from branchwork.stack import components, get_stack, stacks
from processes import python_env
from s3_server import ACCESS_KEY_ID, SECRET_ENV

DOCS = Path(__file__).parents[2] / "docs"
WRONG_SECRET_ENV = "BRANCHWORK_TEST_WRONG_SECRET"


def objects_under(s3_server, root: str) -> list[str]:
    """Every object under `root`, listed with s3fs directly (not through branchwork)."""
    return s3_server.filesystem().find(root)


def register_s3_stack(s3_server, orchestrator: str) -> str:
    """Register an S3 store (as a team would) and a stack with it; make it active."""
    root = f"s3://branchwork/team-{uuid.uuid4().hex[:8]}"
    components.register_artifact_store("team-s3", url=root, **s3_server.store_settings())
    components.register_orchestrator("orch", orchestrator)
    stacks.register_stack("team", "orch", "team-s3")
    stacks.set_active_stack("team")
    return root


# ---- the store -----------------------------------------------------------------------------


def test_an_artifact_saved_through_the_store_is_objects_in_the_bucket(s3_server, s3_store):
    uri = s3_store.new_artifact_uri("train/model")
    save_artifact({"weights": [1, 2, 3]}, uri, s3_store, CollectionMaterializer)

    assert objects_under(s3_server, uri) != []
    assert all(path.startswith(uri.removeprefix("s3://")) for path in objects_under(s3_server, uri))
    # read back from its URI alone, as loads do: with the store's endpoint and credentials
    assert artifact_store_for_uri(uri).spec() == s3_store.spec()
    assert load_artifact(uri, materializer_path(CollectionMaterializer)) == {"weights": [1, 2, 3]}


def test_the_store_travels_without_its_secret(s3_server, s3_store):
    s3_store.write_bytes(s3_store.join(s3_store.root, "f"), b"x")  # builds the filesystem
    spec = s3_store.spec()
    assert spec == {"root": s3_store.root, **s3_server.store_settings()}
    assert spec["secret_env"] == SECRET_ENV
    request = StepRequest("r", "run", "p", "inv", "sr", 1, sp.square, {}, s3_store)
    for carried in (request_to_json(request), pickle.dumps(s3_store)):
        text = carried if isinstance(carried, str) else carried.decode("latin-1")
        assert s3_server.secret not in text
    assert (
        pickle.loads(pickle.dumps(s3_store)).read_bytes(s3_store.join(s3_store.root, "f")) == b"x"
    )


def test_a_secret_file_works_like_a_variable(s3_server, tmp_path):
    secret_file = tmp_path / "s3-secret"
    secret_file.write_text(s3_server.secret + "\n")
    settings = s3_server.store_settings() | {"secret_file": str(secret_file)}
    del settings["secret_env"]
    store = FsspecArtifactStore(f"s3://branchwork/{uuid.uuid4().hex[:8]}", **settings)
    store.write_bytes(store.join(store.root, "f"), b"from a file")
    assert store.read_bytes(store.join(store.root, "f")) == b"from a file"


def _forked_write(store: FsspecArtifactStore, uri: str) -> None:
    store.write_bytes(uri, b"written by a forked child")


def test_a_store_used_before_a_fork_works_in_the_child(s3_store):
    """The local_process zygote builds the store, then forks the step's process."""
    s3_store.write_bytes(s3_store.join(s3_store.root, "parent"), b"parent")
    uri = s3_store.join(s3_store.root, "child")
    child = multiprocessing.get_context("fork").Process(target=_forked_write, args=(s3_store, uri))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0
    assert s3_store.read_bytes(uri) == b"written by a forked child"


def test_a_wrong_secret_is_refused_naming_what_to_check(s3_server, s3_store, monkeypatch):
    wrong = f"wrong-{uuid.uuid4().hex}"
    monkeypatch.setenv(WRONG_SECRET_ENV, wrong)
    settings = s3_server.store_settings(secret_env=WRONG_SECRET_ENV)
    store = FsspecArtifactStore(s3_store.root + "-wrong", **settings)
    with pytest.raises(PermissionError) as info:
        store.write_bytes(store.join(store.root, "f"), b"x")
    message = str(info.value)
    assert message.startswith(f"The artifact store {store.root} refused access to ")
    assert "signature" in message  # the server's own reason
    assert (
        f"check that access key id '{ACCESS_KEY_ID}' may use it and that the environment "
        f"variable {WRONG_SECRET_ENV} holds its secret." in message
    )
    whole = "".join(traceback.format_exception(info.value))
    assert wrong not in whole and s3_server.secret not in whole


def test_a_missing_secret_names_where_it_was_looked_for(s3_server, monkeypatch, tmp_path):
    monkeypatch.delenv("BRANCHWORK_TEST_UNSET", raising=False)
    store = FsspecArtifactStore(
        "s3://branchwork/unset", **s3_server.store_settings(secret_env="BRANCHWORK_TEST_UNSET")
    )
    with pytest.raises(ConfigurationError, match="environment variable BRANCHWORK_TEST_UNSET, "):
        store.exists(store.root)
    settings = s3_server.store_settings() | {"secret_file": str(tmp_path / "none")}
    del settings["secret_env"]
    store = FsspecArtifactStore("s3://branchwork/nofile", **settings)
    with pytest.raises(ConfigurationError, match=re.escape(f"the file {tmp_path / 'none'}: No ")):
        store.exists(store.root)


@pytest.mark.parametrize(
    ("root", "settings", "fragment"),
    [
        ("s3://b/p", {"access_key_id": "k"}, "an access_key_id needs a secret reference"),
        ("s3://b/p", {"secret_env": "X"}, "an access_key_id needs a secret reference"),
        (
            "s3://b/p",
            {"access_key_id": "k", "secret_env": "X", "secret_file": "/f"},
            "secret_env or secret_file, not both",
        ),
        ("memory://p", {"endpoint_url": "http://x"}, "apply to s3:// URLs"),
        # accepted, it failed only when a step first wrote there
        (
            "s3://b/p",
            {"endpoint_url": "127.0.0.1:9000"},
            "endpoint_url must start with http:// or https://, got '127.0.0.1:9000'",
        ),
    ],
)
def test_inconsistent_settings_are_refused(root, settings, fragment):
    with pytest.raises(ConfigurationError, match=fragment):
        FsspecArtifactStore(root, **settings)


def test_a_secret_given_as_a_setting_is_refused_without_echoing_it():
    with pytest.raises(ConfigurationError) as info:
        components.register_artifact_store("s", url="s3://b/p", secret="hunter2-value")
    assert "unknown setting 'secret'" in str(info.value)
    assert "secret_env" in str(info.value) and "hunter2-value" not in str(info.value)
    assert [c.name for c in components.list_components("artifact_store")] == ["default"]


def test_the_docs_snippet_without_s3fs_names_the_extra(tmp_path):
    """docs/ray.md's snippet, run where s3fs is not installed (blocked in sys.modules)."""
    snippet = re.search(r"```python\n(.*?)```", (DOCS / "ray.md").read_text(), re.S)
    assert snippet is not None and "s3://" in snippet.group(1)
    code = "import sys\nsys.modules['s3fs'] = None\n" + snippet.group(1)
    env = {**os.environ, "BRANCHWORK_HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode != 0
    assert "ImportError: The artifact store s3://" in out.stderr
    assert "Install s3fs to access S3 (pip install 'branchwork[s3]')." in out.stderr


# ---- pipelines on a registered S3 stack --------------------------------------------------


@pytest.mark.parametrize("orchestrator", ["local", "local_process"])
def test_a_pipeline_on_an_s3_stack_keeps_its_outputs_in_the_bucket(
    s3_server, s3_secret, orchestrator, branchwork_home
):
    root = register_s3_stack(s3_server, orchestrator)
    assert sp.squares(n=3) == 0 + 1 + 4
    run = Client().get_pipeline_run("latest")
    assert run.status == "completed" and run.orchestrator == orchestrator
    outputs = {name: step.output for name, step in run.steps.items()}
    assert len(outputs) == 6  # numbers, square x3, table, total
    table = outputs.pop("table")  # over INLINE_LIMIT: the one output written to the bucket
    assert table.uri.startswith(root + "/")
    stored = objects_under(s3_server, root)
    assert stored and all(path.startswith(table.uri.removeprefix("s3://") + "/") for path in stored)
    assert sp.read_table(table.load()) == [0, 1, 4]
    # the small ones are kept in the metadata store, and load from there
    assert {name: output.uri for name, output in outputs.items()} == {
        name: inline_uri(output.content_hash) for name, output in outputs.items()
    }
    assert {name: output.load() for name, output in outputs.items()} == {
        "numbers": [0, 1, 2],
        "square": 0,
        "square_2": 1,
        "square_3": 4,
        "total": 5,
    }
    assert not (branchwork_home / "artifacts").exists()  # nothing went to the local disk

    # another process finds the store's settings in the registry to load the table
    code = (
        "from branchwork import Client; run = Client().get_pipeline_run('latest'); "
        "print(run.load_output(), run.steps['table'].output.load().split())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "5 ['0', '1', '4']"


def test_a_team_registers_the_store_with_the_cli_and_loads_from_another_process(
    s3_server, s3_secret
):
    settings = s3_server.store_settings()
    root = f"s3://branchwork/cli-{uuid.uuid4().hex[:8]}"
    runner = CliRunner()
    for command in (
        ["artifact-store", "register", "team-s3", "--url", root]
        + [f"--{name.replace('_', '-')}={value}" for name, value in settings.items()],
        ["stack", "register", "team", "--orchestrator", "default", "--artifact-store", "team-s3"],
        ["stack", "set", "team"],
    ):
        result = runner.invoke(app, command)
        assert result.exit_code == 0, result.output
    listed = runner.invoke(app, ["artifact-store", "list", "--output", "json"])
    registered = {store["name"]: store for store in json.loads(listed.stdout)}["team-s3"]
    assert registered["config"] == {"url": root, **settings}

    assert sp.squares(n=2) == 1
    loaded = {}
    for name in ("table", "total"):  # a file in the bucket, and a value kept inline
        out = subprocess.run(
            [sys.executable, "-m", "branchwork.cli", "artifacts", "load", f"latest/{name}"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        loaded[name] = ast.literal_eval(out.stdout.strip())  # the value's repr
    assert sp.read_table(loaded["table"]) == [0, 1] and loaded["total"] == 1
    steps = Client().get_pipeline_run("latest").steps
    assert steps["table"].output.uri.startswith(root + "/")
    assert steps["total"].output.uri == inline_uri(steps["total"].output.content_hash)


def test_a_wrong_secret_fails_the_run_clearly(s3_server, monkeypatch):
    monkeypatch.setenv(WRONG_SECRET_ENV, f"wrong-{uuid.uuid4().hex}")
    root = f"s3://branchwork/wrong-{uuid.uuid4().hex[:8]}"
    settings = s3_server.store_settings(secret_env=WRONG_SECRET_ENV)
    components.register_artifact_store("wrong-s3", url=root, **settings)
    stacks.register_stack("wrong", "default", "wrong-s3")
    stacks.set_active_stack("wrong")
    with pytest.raises(PipelineRunFailedError) as info:
        sp.squares(n=2)
    assert f"The artifact store {root} refused access to " in str(info.value)
    assert f"the environment variable {WRONG_SECRET_ENV} holds its secret" in str(info.value)
    assert objects_under(s3_server, root) == []


def test_the_secret_is_in_nothing_branchwork_writes(s3_server, s3_secret, branchwork_home):
    """A run on local_process writes an artifact, reads it in an isolated step that prints
    and fails; then every byte branchwork wrote is searched for the secret: the store file,
    step logs, the run's snapshot, errors, and the stack given to orchestration processes."""
    register_s3_stack(s3_server, "local_process")
    with pytest.raises(PipelineRunFailedError) as info:
        sp.failing()

    client = Client()
    run = client.get_pipeline_run("latest")
    logs = client.get_step_logs(run.id)
    assert "read [0, 1]" in logs["fail_after_reading"]  # the step read the artifact from S3
    texts = [
        str(info.value),
        "".join(traceback.format_exception(info.value)),
        repr(run),  # its snapshot, steps, errors and tracebacks
        *logs.values(),
        get_stack("team").to_json(),
    ]
    assert [text for text in texts if s3_secret in text] == []
    files = [path for path in branchwork_home.rglob("*") if path.is_file()]
    assert any(path.name == "branchwork.db" for path in files)
    assert [path for path in files if s3_secret.encode() in path.read_bytes()] == []


CROSS_STORE = """
from branchwork import pipeline, step

@step
def load(n: int) -> list:
    return list(range(n))  # over INLINE_LIMIT: in the stack's artifact store

@step
def work(data: list, k: int) -> int:
    return sum(data) * k

@pipeline
def cross(n: int, k: int):
    return work(load(n), k)
"""


def test_a_cache_hit_held_by_another_registered_store_is_read_with_its_settings(
    s3_server, tmp_path, branchwork_home
):
    """`branchwork run --stack default` was served `load` from the cache, whose output is in
    the team's S3 store, and read it without that store's endpoint and credentials:
    NoCredentialsError. Only `Client()` made the registered stores known."""
    root = f"s3://branchwork/cross-{uuid.uuid4().hex[:8]}"
    components.register_artifact_store("team-s3", url=root, **s3_server.store_settings())
    stacks.register_stack("team", "default", "team-s3")
    (tmp_path / "cross.py").write_text(CROSS_STORE)
    env = python_env(branchwork_home, **{SECRET_ENV: s3_server.secret})

    def run(*args: str) -> list[str]:
        done = subprocess.run(
            [str(Path(sys.executable).parent / "branchwork"), "run", "cross.py:cross", *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()

    assert run("-p", "n=400", "-p", "k=1", "--stack", "team", "--no-progress")[-1] == (
        "Result: 79800"
    )
    assert objects_under(s3_server, root) != []
    assert run("-p", "n=400", "-p", "k=2", "--stack", "default", "--no-progress")[-1] == (
        "Result: 159600"
    )
    steps = Client().list_pipeline_runs(pipeline="cross", limit=1)[0].steps
    assert (str(steps["load"].status), str(steps["work"].status)) == ("cached", "completed")


def test_a_purge_the_store_refuses_lists_every_folder_left_behind(
    s3_server, tmp_path, branchwork_home
):
    """The records are deleted before the files: a purge that failed named only the first
    folder left (or, on an unreachable endpoint, printed botocore's bare error), and the
    others could not be found any more."""
    root = f"s3://branchwork/purge-{uuid.uuid4().hex[:8]}"
    components.register_artifact_store("team-s3", url=root, **s3_server.store_settings())
    stacks.register_stack("team", "default", "team-s3")
    (tmp_path / "cross.py").write_text(CROSS_STORE)
    branchwork = str(Path(sys.executable).parent / "branchwork")

    def command(secret: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [branchwork, *args],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            env=python_env(branchwork_home, **{SECRET_ENV: secret}),
        )

    for n in (400, 401):
        args = ("run", "cross.py:cross", "-p", f"n={n}", "-p", "k=1", "--stack", "team")
        ran = command(s3_server.secret, *args)
        assert ran.returncode == 0, ran.stderr
    folders = sorted(v.uri for v in Client().list_artifact_versions() if v.uri.startswith(root))
    assert len(folders) == 2
    run = Client().list_pipeline_runs(pipeline="cross", limit=1)[0]
    [made] = [v.uri for v in run.steps["load"].outputs.values()]
    deleted = command("a-wrong-secret", "runs", "delete", run.name, "--yes", "--purge-artifacts")
    assert deleted.returncode == 1
    left = [line for line in deleted.stderr.splitlines() if "not removed:" in line]
    assert [line.split()[2] for line in left] == [made]
    assert made in folders
    assert deleted.stderr.splitlines()[-1] == (
        "Error: Could not remove 1 artifact folders (listed above); their records are "
        "deleted: remove them by hand."
    )
