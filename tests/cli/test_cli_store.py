"""`branchwork init` and `branchwork db status|upgrade`."""

from __future__ import annotations

import sqlite3

from branchwork.config.home import home_dir
from branchwork.metadata.store import HEAD_REVISION, dispose_engines
from branchwork.metadata.store_admin import display_url, head_revision


def test_init_creates_a_project_home_that_is_found_from_below(cli, tmp_path, monkeypatch):
    project = tmp_path / "proj"
    result = cli("init", str(project))
    assert result.exit_code == 0, result.output
    home = (project / ".branchwork").resolve()
    assert (home / "branchwork.db").is_file()
    assert str(home) in result.stdout
    assert "BRANCHWORK_HOME is set" in result.stderr  # the test fixture sets it

    again = cli("init", str(project))
    assert again.exit_code == 0 and "Already initialized" in again.stdout

    monkeypatch.delenv("BRANCHWORK_HOME")
    (project / "src" / "deep").mkdir(parents=True)
    monkeypatch.chdir(project / "src" / "deep")
    assert home_dir() == home
    status = cli("db", "status")
    assert status.exit_code == 0, status.output
    assert f"sqlite:///{home / 'branchwork.db'}" in status.stdout
    assert "up to date" in status.stdout
    dispose_engines()


def test_db_status_before_and_after_upgrade(cli, branchwork_home):
    before = cli("db", "status")
    assert before.exit_code == 0, before.output
    assert f"sqlite:///{branchwork_home / 'branchwork.db'}" in before.stdout
    assert "Revision: none" in before.stdout
    assert not (branchwork_home / "branchwork.db").exists()  # status does not create it

    upgraded = cli("db", "upgrade")
    assert upgraded.exit_code == 0, upgraded.output
    assert f"from revision none to {head_revision()}" in upgraded.stdout

    after = cli("db", "status").stdout
    assert f"Revision: {head_revision()} (head: {head_revision()}, up to date)" in after
    assert "already at revision" in cli("db", "upgrade").stdout


def test_head_revision_matches_the_store():
    assert head_revision() == HEAD_REVISION


def test_db_status_hides_the_password(cli, monkeypatch, assert_error):
    assert display_url("postgresql+psycopg://me:s3cret@db.example:5432/bw") == (
        "postgresql+psycopg://me:***@db.example:5432/bw"
    )
    assert "s3cret" not in display_url("weird://me:s3cret@host/x?")
    monkeypatch.setenv("BRANCHWORK_STORE_URL", "postgresql+nosuchdriver://me:s3cret@localhost/bw")
    result = cli("db", "status")
    assert result.exit_code == 1
    assert "s3cret" not in result.output


def test_a_store_a_newer_branchwork_migrated_is_refused_saying_so(
    cli, branchwork_home, assert_error
):
    """A team member upgraded branchwork and the shared store: `db status` said "behind; run
    `branchwork db upgrade`", which failed, as every other command, with Alembic's "Can't
    locate revision identified by '0099'"."""
    assert cli("db", "upgrade").exit_code == 0
    store = branchwork_home / "branchwork.db"
    with sqlite3.connect(store) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099'")
    dispose_engines()
    status = cli("db", "status")
    assert status.exit_code == 0, status.output
    assert f"Revision: 0099 (head: {HEAD_REVISION}, newer than this branchwork knows; " in (
        status.stdout
    )
    newer = (
        f"Error: The store at sqlite:///{store} is at schema revision 0099, newer than this "
        f"branchwork knows (its newest is {HEAD_REVISION}): upgrade branchwork to use it."
    )
    for command in (["db", "upgrade"], ["runs", "list"]):
        assert assert_error(cli(*command)) == newer
        dispose_engines()
