"""The metadata store on a real PostgreSQL server, started for these tests.

Skipped (with the reason) only where no PostgreSQL server binaries are installed; `.ci/run`
installs them.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from branchwork import pipeline, step
from branchwork.metadata import store

BINARIES = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def _as_postgres(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root: run its tools as the `postgres` user there.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def postgres_url():
    if not BINARIES:
        pytest.skip("PostgreSQL server binaries are not installed (apt-get install postgresql)")
    bin_dir = BINARIES[-1]
    folder = Path(tempfile.mkdtemp(prefix="branchwork-pg-"))
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    port = _free_port()
    subprocess.run(
        _as_postgres([f"{bin_dir}/initdb", "-D", str(data), "-U", "postgres", "--auth=trust"]),
        check=True,
        capture_output=True,
    )
    options = f"-k {folder} -p {port} -c listen_addresses=''"
    subprocess.run(
        _as_postgres(
            [
                f"{bin_dir}/pg_ctl",
                "-D",
                str(data),
                "-o",
                options,
                "-w",
                "start",
                "-l",
                str(folder / "log"),
            ]
        ),
        check=True,
        capture_output=True,
    )
    admin = create_engine(
        f"postgresql+psycopg://postgres@/postgres?host={folder}&port={port}",
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.execute(text("CREATE DATABASE branchwork"))
    admin.dispose()
    yield f"postgresql+psycopg://postgres@/branchwork?host={folder}&port={port}"
    store.dispose_engines()
    subprocess.run(
        _as_postgres([f"{bin_dir}/pg_ctl", "-D", str(data), "-m", "immediate", "stop"]),
        capture_output=True,
    )
    shutil.rmtree(folder, ignore_errors=True)


@step
def size(n: int) -> int:
    return n


@step
def part(i: int) -> int:
    return i * i


@step
def total(values: list) -> int:
    return sum(values)


@pipeline
def squares(n: int):
    return total([part(i) for i in range(size(n))])


def test_migrations_create_the_schema_on_postgres(postgres_url):
    engine = store.get_engine(postgres_url)
    assert store.current_revision(engine) == store.HEAD_REVISION
    assert {"pipeline_snapshot", "step_configuration", "step_run_parent"} <= set(
        inspect(engine).get_table_names()
    )


def test_a_dynamic_run_is_recorded_and_cached_on_postgres(postgres_url, monkeypatch):
    monkeypatch.setenv("BRANCHWORK_STORE_URL", postgres_url)
    assert squares(n=4) == 14
    run = squares.last_run
    assert run.snapshot.is_dynamic is True and run.status == "completed"
    assert sorted(run.steps) == ["part", "part_2", "part_3", "part_4", "size", "total"]
    for step_run in run.steps.values():
        assert step_run.configuration.step_run_id == step_run.id
    assert squares(n=4) == 14
    assert {str(s.status) for s in squares.last_run.steps.values()} == {"cached"}
    engine = store.get_engine(postgres_url)
    with engine.connect() as conn:
        dynamic = conn.execute(
            text("SELECT is_dynamic FROM pipeline_snapshot WHERE id = :id"), {"id": run.snapshot.id}
        ).scalar()
        edges = conn.execute(text("SELECT COUNT(*) FROM step_run_parent")).scalar()
    assert dynamic is True
    assert edges == 2 * 4  # two runs, each: total <- part_i (range(size) is a value use)


def test_the_configuration_check_holds_on_postgres(postgres_url):
    from sqlalchemy.exc import IntegrityError

    engine = store.get_engine(postgres_url)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO step_configuration (id, name, step_name, config) "
                "VALUES ('x', 'a', 'a', '{}')"
            )
        )
