"""The metadata store goes away during a run: a real PostgreSQL server restarted mid-run, a
SQLite file locked by another process. Within the retry window the run completes; past it,
it fails with an error naming the store and resumes once the store is back. Either way every
invocation is recorded once."""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from processes import Spawned, python, python_env, wait_until

BRANCHWORK = str(Path(sys.executable).parent / "branchwork")

CHAIN = """
import time
from branchwork import pipeline, step

@step(enable_cache=False)
def link(x: int) -> int:
    time.sleep(0.25)
    return x + 1

@pipeline(enable_cache=False)
def chain(length: int = 12):
    x = 0
    for _ in range(length):
        x = link(x)
    return x

if __name__ == "__main__":
    print("result", chain())
"""


def rows(url: str, query: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(query))]
    except Exception:  # down, or not created yet
        return []
    finally:
        engine.dispose()


def completed_links(url: str) -> int:
    found = rows(url, "SELECT count(*) FROM step_run WHERE status = 'completed'")
    return found[0][0] if found else 0


def each_invocation_recorded_once(url: str, length: int = 12) -> None:
    recorded = rows(url, "SELECT name, status FROM step_run ORDER BY start_time")
    assert sorted(name for name, status in recorded if status == "completed") == sorted(
        ["link"] + [f"link_{i}" for i in range(2, length + 1)]
    ), recorded
    assert [s for _, s in recorded if s not in ("completed", "failed")] == []


@pytest.fixture
def chain_script(tmp_path):
    script = tmp_path / "chain.py"
    script.write_text(CHAIN)
    return script


@pytest.mark.parametrize("down_for", [0.2, 3.0])
def test_a_postgres_restart_within_the_retry_window_lets_the_run_complete(
    postgres_server, chain_script, tmp_path, down_for
):
    url = postgres_server.create_database(f"outage_{uuid.uuid4().hex[:8]}")
    env = python_env(tmp_path / "home", BRANCHWORK_STORE_URL=url)
    with Spawned(python(str(chain_script)), env=env) as run:
        wait_until(lambda: completed_links(url) >= 3, 60, "three links to complete")
        postgres_server.restart(down_for=down_for)
        code, out, err = run.wait(120)
    assert code == 0, err
    assert "result 12" in out
    assert "unavailable while" in err  # the retries said what they were doing
    assert rows(url, "SELECT status FROM pipeline_run") == [("completed",)]
    each_invocation_recorded_once(url)


def test_a_run_started_while_postgres_restarts_waits_for_it(
    postgres_server, chain_script, tmp_path
):
    """Its first connection was not retried: the run failed at once ("could not be reached
    or migrated") though the server was back two seconds later."""
    url = postgres_server.create_database(f"outage_{uuid.uuid4().hex[:8]}")
    env = python_env(tmp_path / "home", BRANCHWORK_STORE_URL=url)
    postgres_server.stop()
    back = threading.Timer(2.0, postgres_server.start)
    back.start()
    try:
        with Spawned(python(str(chain_script)), env=env) as run:
            code, out, err = run.wait(120)
    finally:
        back.join()
    assert code == 0, err
    assert "result 12" in out
    assert "The metadata store is unavailable while connecting to it" in err
    each_invocation_recorded_once(url)


def test_a_database_the_server_refuses_is_an_error_at_once_not_retried(postgres_server, caplog):
    """The first connection is retried while the server is away, not when it answers with a
    refusal (no such database, a wrong password): that waited out the retry window."""
    from branchwork.exceptions import ConfigurationError
    from branchwork.metadata.store import get_engine

    url = postgres_server.url(f"missing_{uuid.uuid4().hex[:8]}")
    with pytest.raises(ConfigurationError, match="could not be reached or migrated"):
        get_engine(url)
    assert "retrying" not in caplog.text


def test_an_outage_past_the_retry_window_fails_clearly_and_resumes(
    postgres_server, chain_script, tmp_path
):
    url = postgres_server.create_database(f"outage_{uuid.uuid4().hex[:8]}")
    env = python_env(
        tmp_path / "home",
        BRANCHWORK_STORE_URL=url,
        BRANCHWORK_STORE_RETRY_SECONDS="2",
        BRANCHWORK_HEARTBEAT_SECONDS="0.2",
    )
    with Spawned(python(str(chain_script)), env=env) as run:
        wait_until(lambda: completed_links(url) >= 3, 60, "three links to complete")
        postgres_server.stop()
        code, _, err = run.wait(60)
    assert code == 1
    last_line = err.strip().splitlines()[-1]
    assert last_line.startswith("branchwork.exceptions.StoreUnavailableError: The metadata ")
    database = make_url(url).database
    assert f"store at 'postgresql+psycopg://postgres@/{database}?host=" in last_line
    assert "was unavailable for over 2s while" in last_line and "resume the run" in last_line
    assert "it reads failed" in last_line  # when the resume is possible
    loop_said = [line for line in err.splitlines() if "orchestration loop of run" in line]
    assert len(loop_said) == 1 and "stopped: The metadata store" in loop_said[0]  # no traceback
    postgres_server.start()
    time.sleep(1.5)  # the dead loop's heartbeat is now old: the run reads lost
    with Spawned([BRANCHWORK, "runs", "resume", "latest"], env=env) as resume:
        code, out, err = resume.wait(120)
    assert code == 0, err
    assert "Result: 12" in out
    assert rows(url, "SELECT status FROM pipeline_run") == [("completed",)]
    each_invocation_recorded_once(url)


def test_a_sqlite_lock_held_for_a_while_mid_run_is_waited_out(chain_script, tmp_path):
    home = tmp_path / "home"
    env = python_env(home, BRANCHWORK_SQLITE_BUSY_TIMEOUT="0.2")
    database = home / "branchwork.db"
    url = f"sqlite:///{database}"
    with Spawned(python(str(chain_script)), env=env) as run:
        wait_until(lambda: completed_links(url) >= 3, 60, "three links to complete")
        holder = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN EXCLUSIVE")
        release = threading.Timer(2.0, holder.rollback)
        release.start()
        try:
            code, out, err = run.wait(120)
        finally:
            release.join()
            holder.close()
    assert code == 0, err
    assert "result 12" in out and "database is locked" in err
    each_invocation_recorded_once(url)
