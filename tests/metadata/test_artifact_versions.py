"""Named artifacts get versions 1, 2, 3 ... across runs and pipelines, with previews, tags and
searchable metadata; numbers hold under concurrent runs (SQLite and PostgreSQL), survive a
flush whose commit acknowledgement was lost, are never given again after a delete, and are
backfilled when a store at 0005 is upgraded."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from datetime import datetime, timedelta
from typing import Annotated

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import IntegrityError, OperationalError

from branchwork import ArtifactConfig, Client, log_artifact_metadata, pipeline, step
from branchwork.exceptions import BranchworkError
from branchwork.metadata import store
from branchwork.metadata.recorder import artifact_id
from branchwork.metadata.run_deletion import delete_run
from branchwork.metadata.runs import pipeline_id
from processes import Spawned, python, python_env


def versions_of(url: str, name: str) -> tuple[list[int], int]:
    """The version numbers of artifact `name` in the store at `url`, and its version_count."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            numbers = conn.execute(
                text(
                    "SELECT v.version FROM artifact_version v JOIN artifact a "
                    "ON a.id = v.artifact_id WHERE a.name = :name ORDER BY v.version"
                ),
                {"name": name},
            ).scalars()
            count = conn.execute(
                text("SELECT version_count FROM artifact WHERE name = :name"), {"name": name}
            ).scalar()
            return list(numbers), count
    finally:
        engine.dispose()


# ---- numbering across runs and pipelines ---------------------------------------------------


@step(enable_cache=False)
def train(quality: float) -> Annotated[dict, ArtifactConfig(name="model", tags=["candidate"])]:
    log_artifact_metadata({"accuracy": quality, "params": {"depth": 3, "trees": 10}})
    return {"quality": quality}


@pipeline(enable_cache=False)
def training(quality: float = 0.5):
    return train(quality)


@step(enable_cache=False)
def retrain() -> Annotated[dict, ArtifactConfig(name="model", tags=["prod"])]:
    log_artifact_metadata({"accuracy": 0.99})
    return {"quality": 0.99}


@pipeline(enable_cache=False)
def retraining():
    return retrain()


def test_each_run_adds_the_next_version(client):
    for quality in (0.1, 0.2, 0.3):
        training(quality=quality)
    latest = client.get_artifact_version("model")
    assert (latest.name, latest.version, latest.load()) == ("model", 3, {"quality": 0.3})
    assert latest.tags == ("candidate",)
    assert latest.metadata == {"accuracy": 0.3, "params": {"depth": 3, "trees": 10}}
    assert client.get_artifact_version("model", version=2).load() == {"quality": 0.2}
    assert client.get_artifact_version(latest.id) == latest
    assert [v.version for v in client.list_artifact_versions(name="model")] == [3, 2, 1]
    run = client.get_pipeline_run("latest")
    assert run.steps["train"].output == latest  # run responses carry the same labels
    assert run.outputs[0].version == 3


def test_a_preview_is_stored_with_each_version(client):
    training(quality=0.25)
    preview = client.get_artifact_version("model").preview
    assert preview is not None and preview["text"] == "{'quality': 0.25}"


def test_two_pipelines_add_versions_of_one_artifact_and_filters_narrow(client):
    training(quality=0.7)
    retraining()
    training(quality=0.9)
    by_pipeline = {
        name: [v.version for v in client.list_artifact_versions(pipeline=name)]
        for name in ("training", "retraining")
    }
    assert by_pipeline == {"training": [3, 1], "retraining": [2]}
    assert [v.version for v in client.list_artifact_versions(tag="prod")] == [2]
    assert [v.version for v in client.list_artifact_versions(tag="candidate")] == [3, 1]
    assert client.list_artifact_versions(tag="nope") == []
    assert client.list_artifact_versions(name="model", pipeline="nope") == []


def test_logged_metadata_is_searchable(client):
    training(quality=0.9)
    training(quality=0.8)
    retraining()

    def search(**metadata):
        return [v.version for v in client.list_artifact_versions(metadata=metadata)]

    assert search(accuracy=0.9) == [1]
    assert search(accuracy=0.99) == [3]
    assert search(params={"trees": 10, "depth": 3}) == [2, 1]  # key order does not matter
    assert search(accuracy=0.8, params={"depth": 3, "trees": 10}) == [2]
    assert search(accuracy=0.8, params={"depth": 4, "trees": 10}) == []
    assert search(accuracy="0.9") == []  # compared as JSON: a string is not a number
    tagged = client.list_artifact_versions(tag="prod", metadata={"accuracy": 0.99})
    assert [(v.name, v.version) for v in tagged] == [("model", 3)]


def test_unknown_names_and_versions_are_clear_errors(client):
    training(quality=0.1)
    training(quality=0.2)
    with pytest.raises(BranchworkError) as info:
        client.get_artifact_version("model", version=7)
    assert str(info.value) == "Artifact 'model' has no version 7; its versions: 1-2."
    with pytest.raises(BranchworkError) as info:
        client.get_artifact_version("modle")
    assert str(info.value) == (
        "No artifact named 'modle' and no artifact version with that id; `branchwork artifacts "
        "list` shows the names."
    )
    with pytest.raises(BranchworkError) as info:
        client.get_artifact_version("modle", version=1)
    assert str(info.value) == (
        "No artifact named 'modle' (or it has no versions); `branchwork artifacts list` shows "
        "the names."
    )


# ---- a fan-out, the cache, deletion ---------------------------------------------------------


@step
def part(i: int) -> Annotated[int, ArtifactConfig(name="part", tags=["shard"])]:
    log_artifact_metadata({"index": i})
    return i * 10


@pipeline
def sharded(n: int = 6):
    return [part(i) for i in range(n)]


def test_a_fan_out_numbers_every_version_once_and_a_cache_hit_adds_none(client):
    sharded(n=6)
    versions = client.list_artifact_versions(name="part")
    assert sorted(v.version for v in versions) == [1, 2, 3, 4, 5, 6]
    assert sorted(v.metadata["index"] for v in versions) == [0, 1, 2, 3, 4, 5]
    assert {v.version: v.load() // 10 for v in versions} == {
        v.version: v.metadata["index"] for v in versions
    }
    sharded(n=6)  # every invocation a cache hit: the same versions, linked again
    assert sorted(v.version for v in client.list_artifact_versions(name="part")) == [
        1,
        2,
        3,
        4,
        5,
        6,
    ]
    sharded(n=7)  # one new invocation
    assert client.get_artifact_version("part").version == 7


def test_a_deleted_versions_number_is_not_given_again(client, branchwork_home):
    for quality in (0.1, 0.2, 0.3):
        training(quality=quality)
    engine = store.get_engine()
    deleted = delete_run(engine, client.get_pipeline_run("latest").id)
    assert [v.version for v in deleted.deleted_versions] == [3]
    with engine.connect() as conn:
        labels = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM artifact_version_tag), "
                "(SELECT count(*) FROM artifact_version_metadata)"
            )
        ).one()
    assert tuple(labels) == (2, 4)  # the deleted version's tag and metadata went with it
    training(quality=0.4)
    assert [v.version for v in client.list_artifact_versions(name="model")] == [4, 2, 1]
    with pytest.raises(BranchworkError) as info:
        client.get_artifact_version("model", version=3)
    assert str(info.value) == "Artifact 'model' has no version 3; its versions: 1-2, 4."


# ---- reading a run stays one query per kind of row -------------------------------------------


@step
def seed() -> int:
    return 1


@step
def grow(x: int) -> Annotated[int, "grown"]:
    return x + 1


@pipeline(enable_cache=False)
def growing(n: int = 3):
    return [grow(seed()) for _ in range(n)]


def statements_reading(client, run_name):
    engine = store.get_engine()
    seen: list[str] = []

    def count(*args):
        seen.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        client.get_pipeline_run(run_name)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return len(seen)


def test_reading_a_run_costs_the_same_queries_whatever_its_size(client):
    growing(n=3)
    small = client.get_pipeline_run("latest").name
    growing(n=60)
    large = client.get_pipeline_run("latest").name
    assert statements_reading(client, small) == statements_reading(client, large)


# ---- a lost commit acknowledgement ----------------------------------------------------------


def test_numbers_stay_gapless_when_a_committed_flush_is_retried(client):
    """Each commit that wrote artifact versions is made, then reported lost (as when the
    connection drops after the server committed): the recorder retries the flush, which must
    not count those versions again."""
    engine = store.get_engine()
    lost: set[str] = set()  # the first version row of each batch whose acknowledgement was lost

    def note_versions(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT INTO artifact_version "):
            first_row = parameters[0] if executemany else parameters
            conn.info["versions"] = first_row[0]  # its id (SQLite binds by position)

    def commit_then_lose_ack(conn):
        batch = conn.info.pop("versions", None)
        if batch is not None and batch not in lost:  # once per batch: its retry goes through
            conn.connection.dbapi_connection.commit()
            lost.add(batch)
            raise OperationalError("COMMIT", {}, sqlite3.OperationalError("disk I/O error"))

    event.listen(engine, "before_cursor_execute", note_versions)
    event.listen(engine, "commit", commit_then_lose_ack)
    try:
        sharded(n=5)
        training(quality=0.5)
    finally:
        event.remove(engine, "before_cursor_execute", note_versions)
        event.remove(engine, "commit", commit_then_lose_ack)
    assert lost, "no commit was reported lost"
    url = str(engine.url)
    assert versions_of(url, "part") == ([1, 2, 3, 4, 5], 5)
    assert versions_of(url, "model") == ([1], 1)


# ---- concurrent runs in two processes -------------------------------------------------------

PRODUCER = """
import sys
import time
from pathlib import Path
from typing import Annotated

from branchwork import pipeline, step


@step(enable_cache=False)
def shard(i: int) -> Annotated[int, "shared_shard"]:
    return i


@pipeline(enable_cache=False)
def producer(n: int):
    for i in range(n):
        shard(i)


start = Path(sys.argv[1])
Path(sys.argv[2]).touch()
while not start.exists():
    time.sleep(0.005)
for _ in range({runs}):
    producer(n={shards})
"""
RUNS, SHARDS, TIMEOUT = 3, 25, 180.0


def test_concurrent_runs_number_one_artifact_without_gaps_or_twins(store_url, tmp_path):
    store.get_engine(store_url)  # migrated before the race
    script = tmp_path / "producer.py"
    script.write_text(PRODUCER.format(runs=RUNS, shards=SHARDS))
    start = tmp_path / "start"
    with contextlib.ExitStack() as stack:
        children = []
        for index in range(2):
            env = python_env(tmp_path / f"home-{index}", BRANCHWORK_STORE_URL=store_url)
            ready = tmp_path / f"ready-{index}"
            args = python(str(script), str(start), str(ready))
            children.append((stack.enter_context(Spawned(args, env=env)), ready))
        deadline = time.monotonic() + TIMEOUT
        while not all(ready.exists() for _, ready in children):
            assert time.monotonic() < deadline, "the producers never got ready"
            for child, _ in children:
                assert child.process.poll() is None, child.wait(1.0)[2]
            time.sleep(0.01)
        start.touch()
        for child, _ in children:
            code, _, err = child.wait(max(deadline - time.monotonic(), 1.0))
            assert code == 0, err
    total = 2 * RUNS * SHARDS
    assert versions_of(store_url, "shared_shard") == (list(range(1, total + 1)), total)


# ---- migrating a store at 0005 ----------------------------------------------------------------

T0 = datetime(2026, 11, 1, 12, 0, 0)
LEGACY = "legacy::train::output"
LEGACY_VERSIONS = [  # id, created: numbered by created, then id
    ("c" * 32, T0 + timedelta(minutes=2)),
    ("b" * 32, T0),
    ("a" * 32, T0 + timedelta(minutes=2)),
    ("d" * 32, T0 + timedelta(minutes=5)),
]


def _fill_0005_store(conn) -> None:
    """A run of pipeline `legacy` whose four `train` step runs made four versions of its
    artifact, and one version of another artifact, written as 0005 stored them."""
    ids = {"p": pipeline_id("legacy"), "t": T0}  # ids as branchwork derives them from names
    conn.execute(text("INSERT INTO pipeline (id, name, created) VALUES (:p, 'legacy', :t)"), ids)
    conn.execute(
        text(
            "INSERT INTO pipeline_snapshot (id, pipeline_id, is_dynamic, source, parameters, "
            "spec, created) VALUES ('s', :p, false, 'x:legacy', '{}', '{}', :t)"
        ),
        ids,
    )
    conn.execute(
        text(
            "INSERT INTO pipeline_run (id, name, pipeline_id, snapshot_id, status, orchestrator, "
            "parameters, created) VALUES ('r', 'legacy-run', :p, 's', 'completed', 'local', "
            "'{}', :t)"
        ),
        ids,
    )
    artifacts = {name: artifact_id(name) for name in (LEGACY, "other")}
    for name, identity in artifacts.items():
        conn.execute(
            text("INSERT INTO artifact (id, name, created) VALUES (:id, :name, :t)"),
            {"id": identity, "name": name, "t": T0},
        )
    versions = [(vid, artifacts[LEGACY], created) for vid, created in LEGACY_VERSIONS]
    versions.append(("e" * 32, artifacts["other"], T0))
    for attempt, (version_id, identity, created) in enumerate(versions, start=1):
        step_run_id = f"{attempt:032d}"
        conn.execute(
            text(
                "INSERT INTO step_run (id, run_id, name, step_name, attempt, status, code_hash) "
                "VALUES (:id, 'r', 'train', 'train', :attempt, 'completed', 'h')"
            ),
            {"id": step_run_id, "attempt": attempt},
        )
        conn.execute(
            text(
                "INSERT INTO artifact_version (id, artifact_id, uri, data_type, materializer, "
                "content_hash, producer_step_run_id, created) VALUES (:id, :artifact, 'file:///x', "
                "'builtins.int', 'm', 'h', :step_run, :created)"
            ),
            {
                "id": version_id,
                "artifact": identity,
                "step_run": step_run_id,
                "created": created,
            },
        )
        conn.execute(
            text(
                "INSERT INTO step_run_output_artifact (step_run_id, name, artifact_version_id) "
                "VALUES (:step_run, 'output', :id)"
            ),
            {"step_run": step_run_id, "id": version_id},
        )


@step(name="train", enable_cache=False)
def legacy_train() -> int:
    return 5


@pipeline(name="legacy", enable_cache=False)
def legacy():
    return legacy_train()


def test_upgrading_a_0005_store_numbers_its_versions(store_url):
    engine = create_engine(store_url)
    try:
        store.upgrade(engine, "0005")
        with engine.begin() as conn:
            _fill_0005_store(conn)
        store.upgrade(engine)
        assert store.current_revision(engine) == store.HEAD_REVISION
        with engine.connect() as conn:
            numbered = {
                row.id: row.version
                for row in conn.execute(text("SELECT id, version FROM artifact_version"))
            }
            counts = {
                row.name: row.version_count
                for row in conn.execute(text("SELECT name, version_count FROM artifact"))
            }
            links = conn.execute(text("SELECT count(*) FROM step_run_output_artifact")).scalar()
        assert numbered == {"b" * 32: 1, "a" * 32: 2, "c" * 32: 3, "d" * 32: 4, "e" * 32: 1}
        assert counts == {LEGACY: 4, "other": 1}
        assert links == 5  # the in-place migration kept every row that refers to a version
        with pytest.raises(IntegrityError), engine.begin() as conn:  # numbers are unique
            conn.execute(text(f"UPDATE artifact_version SET version = 1 WHERE id = '{'a' * 32}'"))
    finally:
        engine.dispose()
    legacy()  # a new run of the same pipeline and step continues the numbering
    new = Client().get_pipeline_run("latest").steps["train"].output
    assert (new.name, new.version, new.load()) == (LEGACY, 5, 5)
    assert Client().get_artifact_version(LEGACY, version=1).id == "b" * 32


def test_a_migrated_store_matches_the_schema(store_url):
    from test_migrations import schema_differences

    engine = create_engine(store_url)
    try:
        store.upgrade(engine, "0005")
        store.upgrade(engine)
        assert schema_differences(engine) == []
    finally:
        engine.dispose()


def test_0006_downgrades_and_upgrades_again_keeping_links(store_url):
    from alembic import command

    engine = create_engine(store_url)
    try:
        store.upgrade(engine, "0005")
        with engine.begin() as conn:
            _fill_0005_store(conn)
        store.upgrade(engine)
        with store.migrating(engine) as conn:
            command.downgrade(store.alembic_config(conn), "0005")
        assert store.current_revision(engine) == "0005"
        store.upgrade(engine)
        with engine.connect() as conn:
            links = conn.execute(text("SELECT count(*) FROM step_run_output_artifact")).scalar()
        assert links == 5
    finally:
        engine.dispose()
