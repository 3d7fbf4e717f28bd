"""`branchwork db migrate-to URL [--artifacts-to URI]`: a laptop's store copied into a team's
PostgreSQL (and into another SQLite file), its refusals, and its artifact files moved."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from branchwork import Client, pipeline, step
from branchwork.artifact_stores.inline import INLINE_LIMIT, is_inline
from branchwork.config.home import artifacts_dir, store_url
from branchwork.exceptions import ArtifactError
from branchwork.metadata import schema, store
from branchwork.metadata.store import dispose_engines, get_engine
from branchwork.metadata.store_admin import display_url


@step
def words(n: int) -> list:
    """Words padded to INLINE_LIMIT characters: the list is a file in the artifact store."""
    print(f"{n} words")
    return [f"w{i}".ljust(INLINE_LIMIT, ".") for i in range(n)]


@step
def joined(values: list) -> str:
    """Short: kept inline in the metadata store."""
    return " ".join(value.rstrip(".") for value in values)


@pipeline
def migrate_words(n: int = 3):
    return joined(words(n))


def uris(url: str) -> dict[str, str]:
    table = schema.artifact_version
    with get_engine(url).connect() as conn:
        return {row.id: row.uri for row in conn.execute(select(table.c.id, table.c.uri))}


def files_and_inline(url: str) -> tuple[dict[str, str], dict[str, str]]:
    """The store's artifact versions kept as files, and those kept inline."""
    recorded = uris(url)
    inline = {version: uri for version, uri in recorded.items() if is_inline(uri)}
    return {v: uri for v, uri in recorded.items() if v not in inline}, inline


def table_lines(stdout: str) -> dict[str, list[str]]:
    lines = [line.split() for line in stdout.splitlines() if line.startswith("  ")]
    return {line[0]: line[1:] for line in lines}


def test_migrate_to_postgresql_copies_everything_once(cli, postgres_server, monkeypatch):
    migrate_words(n=3)
    migrate_words(n=3)  # cached
    source_runs = cli("runs", "list").stdout
    team = postgres_server.create_database(f"team_{uuid.uuid4().hex[:12]}")
    secret_url = team.replace("postgres@", "postgres:s3cret@")  # trust auth ignores it

    result = cli("db", "migrate-to", secret_url)
    assert result.exit_code == 0, result.output
    shown = display_url(secret_url)
    assert "postgres:***@" in shown
    lines = result.stdout.splitlines()
    assert lines[:2] == [
        f"Copying {store_url()} into {shown}.",
        f"Upgraded {shown} from revision none to {store.HEAD_REVISION}.",
    ]
    copied = table_lines(result.stdout)
    kept_figures = schema.run_summary  # derived: not copied (`metadata.store_copy`)
    assert list(copied) == [t.name for t in schema.metadata.sorted_tables if t is not kept_figures]
    assert copied["pipeline_run"] == ["2", "copied", "0", "already", "there"]
    assert copied["step_log"] == ["1", "copied", "0", "already", "there"]
    assert copied["stack"] == ["0", "copied", "1", "already", "there"]  # its own default
    total = sum(int(line[0]) for line in copied.values())
    there = sum(int(line[2]) for line in copied.values())
    assert lines[-1] == f"Copied {total} rows into {shown} ({there} were already there)."
    assert "s3cret" not in result.output

    again = cli("db", "migrate-to", secret_url)
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines()[1].startswith("  ")  # no upgrade this time
    assert again.stdout.splitlines()[-1] == (
        f"Nothing to copy: all {total + there} rows are already in {shown}."
    )

    monkeypatch.setenv("BRANCHWORK_STORE_URL", team)
    assert cli("runs", "list").stdout == source_runs
    assert Client().get_pipeline_run("latest").steps["joined"].output.load() == "w0 w1 w2"


def test_migrate_to_refuses_the_same_store_naming_it(cli, branchwork_home, assert_error):
    migrate_words()
    same = f"sqlite:///{branchwork_home / 'sub' / '..' / 'branchwork.db'}"
    line = assert_error(cli("db", "migrate-to", same))
    assert line == (
        f"Error: {same} is the store being copied: give the URL of another store to copy it into."
    )


@pytest.mark.parametrize(
    "memory", ["sqlite://", "sqlite:///:memory:", "sqlite:///file:team?mode=memory&uri=true"]
)
def test_migrate_to_refuses_an_in_memory_store(cli, memory, assert_error):
    """The copy was reported done and thrown away as the command ended."""
    migrate_words()
    line = assert_error(cli("db", "migrate-to", memory))
    assert line == (
        f"Error: {display_url(memory)} is an in-memory database, gone when this command ends: "
        "give the URL of a store that lasts (sqlite:////path/to/branchwork.db)."
    )


def test_migrate_to_refuses_without_a_store_to_copy(cli, tmp_path, assert_error):
    line = assert_error(cli("db", "migrate-to", f"sqlite:///{tmp_path / 'team.db'}"))
    assert line == (
        f"Error: There is no store at {store_url()} to copy: nothing has been recorded there yet."
    )
    assert not (tmp_path / "team.db").exists()


def test_migrate_to_refuses_a_source_behind_and_says_to_upgrade(cli, tmp_path, assert_error):
    engine = create_engine(store_url())
    try:
        store.upgrade(engine, "0005")
    finally:
        engine.dispose()
    line = assert_error(cli("db", "migrate-to", f"sqlite:///{tmp_path / 'team.db'}"))
    assert line == (
        f"Error: The store at {store_url()} is at schema revision 0005, behind this "
        f"branchwork's {store.HEAD_REVISION}: run `branchwork db upgrade` first."
    )
    assert not (tmp_path / "team.db").exists()
    assert cli("db", "upgrade").exit_code == 0
    assert cli("db", "migrate-to", f"sqlite:///{tmp_path / 'team.db'}").exit_code == 0


def test_migrate_to_refuses_a_target_newer_than_this_branchwork(cli, tmp_path, assert_error):
    migrate_words()
    team = f"sqlite:///{tmp_path / 'team.db'}"
    with get_engine(team).begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    dispose_engines()
    line = assert_error(cli("db", "migrate-to", team))
    assert line == (
        f"Error: The store at {team} is at schema revision 0099, newer than this branchwork "
        f"knows (its newest is {store.HEAD_REVISION}): upgrade branchwork to copy into it."
    )
    with create_engine(team).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM pipeline_run")).scalar() == 0


def test_migrate_to_refuses_what_is_not_a_url(cli, tmp_path, assert_error):
    migrate_words()
    line = assert_error(cli("db", "migrate-to", str(tmp_path / "team.db")))
    assert line == (
        f"Error: '{tmp_path / 'team.db'}' is not a store URL: give one like "
        "postgresql+psycopg://user@host/branchwork or sqlite:////path/to/branchwork.db."
    )


def test_migrate_to_with_artifacts_to_a_folder(cli, tmp_path):
    migrate_words(n=2)
    migrate_words(n=4)
    source = store_url()
    team = f"sqlite:///{tmp_path / 'team.db'}"
    shared = tmp_path / "shared"
    local_uris, inline_uris = files_and_inline(source)
    assert len(local_uris) == 2 and len(inline_uris) == 2  # words; joined (the runs' outputs)

    result = cli("db", "migrate-to", team, "--artifacts-to", str(shared))
    assert result.exit_code == 0, result.output
    assert f"Copying artifact files to {shared}." in result.stdout
    assert result.stdout.splitlines()[-1] == (
        f"Artifacts: 2 copied, and their records in {team} pointed at the copies; 0 had been "
        "copied before; 2 small ones are kept in the metadata store itself and came with the "
        "rows."
    )
    moved = uris(team)
    assert uris(source) == local_uris | inline_uris  # the source store is never written
    assert {version: moved[version] for version in inline_uris} == inline_uris
    for version_id, uri in local_uris.items():
        local = Path(uri)
        assert moved[version_id] == str(shared / local.parent.name / local.name)
        assert sorted(p.name for p in Path(moved[version_id]).iterdir()) == sorted(
            p.name for p in local.iterdir()
        )

    again = cli("db", "migrate-to", team, "--artifacts-to", str(shared))
    assert "; 2 had been copied before; 2 small ones" in again.stdout.splitlines()[-1]

    shutil.move(artifacts_dir(), tmp_path / "laptop-artifacts-gone")
    latest = Client(team).get_pipeline_run("latest")
    assert latest.steps["joined"].output.load() == "w0 w1 w2 w3"
    assert [word.rstrip(".") for word in latest.steps["words"].output.load()] == [
        "w0",
        "w1",
        "w2",
        "w3",
    ]
    on_the_laptop = Client(source).get_pipeline_run("latest")
    with pytest.raises(ArtifactError, match="missing from the artifact store"):
        on_the_laptop.steps["words"].output.load()
    assert on_the_laptop.steps["joined"].output.load() == "w0 w1 w2 w3"  # in the source's row


def test_migrate_to_with_artifacts_to_an_fsspec_url(cli, tmp_path):
    migrate_words(n=2)
    team = f"sqlite:///{tmp_path / 'team.db'}"
    bucket = f"memory://team-{uuid.uuid4().hex[:8]}/artifacts"  # fsspec's, in this process

    result = cli("db", "migrate-to", team, "--artifacts-to", bucket + "/")
    assert result.exit_code == 0, result.output
    assert "Artifacts: 1 copied," in result.stdout and "; 1 small ones are kept" in result.stdout
    files, inline = files_and_inline(team)
    assert len(files) == 1 and all(uri.startswith(bucket + "/") for uri in files.values())
    assert len(inline) == 1
    shutil.move(artifacts_dir(), tmp_path / "laptop-artifacts-gone")
    latest = Client(team).get_pipeline_run("latest")
    assert [word.rstrip(".") for word in latest.steps["words"].output.load()] == ["w0", "w1"]
    assert latest.steps["joined"].output.load() == "w0 w1"


def test_migrate_to_a_sqlite_file_in_a_new_folder_makes_the_folder(cli, tmp_path):
    """It failed with SQLite's bare 'unable to open database file'."""
    migrate_words()
    target = tmp_path / "team" / "stores" / "team.db"
    result = cli("db", "migrate-to", f"sqlite:///{target}")
    assert result.exit_code == 0, result.output
    copied = uris(f"sqlite:///{target}")
    assert copied and copied == uris(store_url())


def test_migrate_to_artifacts_it_cannot_write_copies_nothing(cli, tmp_path, assert_error):
    """It copied every row, then failed on the first file, leaving the target with records
    pointing at this machine's files."""
    migrate_words()
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    team = f"sqlite:///{tmp_path / 'team.db'}"
    line = assert_error(cli("db", "migrate-to", team, "--artifacts-to", str(blocker / "artifacts")))
    assert line.startswith(f"Error: Cannot write artifact files to {blocker / 'artifacts'}: ")
    assert line.endswith(
        "Nothing was copied. Register the artifact store for it with its endpoint and "
        "credentials (`branchwork artifact-store register`), then run this again."
    )
    assert uris(team) == {}
