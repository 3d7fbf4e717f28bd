"""docs/team.md, run as written: every fenced block of the page, in the page's order, in real
shells, against a real PostgreSQL server (over TCP, a password required), the S3 test
server, a Ray cluster of two nodes that the page's own `ray start` commands start, and the
real dashboard.

The page tags each block with what the test does with it (its info string):
`bash team` runs and must succeed; `bash team-site` holds the site's values, which the test
supplies itself for exactly the names the block exports; `python team-file=NAME` is written
to NAME in the working folder; `bash team-laptop` runs on a laptop that has a history of
its own (the test makes one first); `bash team-serve` runs until stopped (the test waits for
the dashboard's URL, asks it questions, then stops it). A fenced block without a tag fails
the test, so nothing on the page goes unrun.

Variables exported by one block reach the next ones, as in one terminal. Every process the
blocks start carries a marker variable; at the end every process that has it (Ray's daemons
and workers included) is killed by pid. The Ray cluster keeps its files and its address in
a private RAY_TMPDIR, so nothing else on this machine finds or joins it.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from free_ports import free_port
from postgres_server import PostgresServer, server_binaries
from s3_server import ACCESS_KEY_ID, REGION

pytest.importorskip("ray", reason="ray is not installed (pip install 'branchwork[ray]')")
pytestmark = [pytest.mark.timeout(900), pytest.mark.xdist_group("ray")]

DOC = Path(__file__).resolve().parents[2] / "docs" / "team.md"
BLOCK = re.compile(r"^```(?P<info>[^\n]*)\n(?P<body>.*?)^```\s*$", re.MULTILINE | re.DOTALL)
TAGS = ("team", "team-site", "team-file", "team-laptop", "team-serve")
SECRET_FILES = ("branchwork-db", "team-s3", "ray-token", "dashboard-token")
BLOCK_TIMEOUT = 300.0  # `ray start` alone takes 20-40 s on a loaded 2-core machine
SERVE_TIMEOUT = 60.0
MARKER = "BRANCHWORK_TEAM_DOC_TEST"
SHELL_ONLY = ("_", "SHLVL", "PWD", "OLDPWD")


@dataclass
class Block:
    tag: str
    body: str
    line: int
    file: str | None = None


def doc_blocks() -> list[Block]:
    """Every fenced block of docs/team.md, in order; a block without a team tag is refused."""
    text = DOC.read_text(encoding="utf-8")
    blocks = []
    for match in BLOCK.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        words = match["info"].split()
        tag, _, file = (words[1] if len(words) > 1 else "").partition("=")
        assert tag in TAGS, f"docs/team.md:{line}: a block the test does not run: {match[0]!r}"
        blocks.append(Block(tag, match["body"], line, file or None))
    return blocks


class TcpPostgres(PostgresServer):
    """The team's database server: on TCP loopback, a password required of every role but
    the `postgres` superuser that the page's admin step connects as."""

    listen_addresses = "127.0.0.1"

    def require_passwords(self) -> None:
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "host all postgres 127.0.0.1/32 trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
        )

    def dump(self, database: str) -> str:
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        command = [str(self.bin_dir / "pg_dump"), f"--host={self.folder}", f"--port={self.port}"]
        return subprocess.run(
            [*as_postgres, *command, "--username=postgres", database],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout


@dataclass
class Shell:
    """One block's run: its exit code and output."""

    block: Block
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return (
            f"docs/team.md:{self.block.line} exited {self.returncode}\n{self.block.body}\n"
            f"--- stdout\n{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-3000:]}"
        )


@dataclass
class Dashboard:
    """What the page's dashboard printed and answered while it ran."""

    printed: str = ""
    url: str = ""
    answers: dict[str, tuple[int, Any]] = field(default_factory=dict)


@dataclass
class Walkthrough:
    """The page followed from top to bottom in one working folder, as in one terminal."""

    env: dict[str, str]
    cwd: Path
    secrets_dir: Path
    shells: list[Shell] = field(default_factory=list)
    dashboard: Dashboard = field(default_factory=Dashboard)
    laptop_run: dict[str, Any] = field(default_factory=dict)

    @property
    def secrets(self) -> dict[str, str]:
        return {name: (self.secrets_dir / name).read_text().strip() for name in SECRET_FILES}

    def containing(self, command: str) -> Shell:
        return next(shell for shell in self.shells if command in shell.block.body)

    def follow(self, block: Block) -> None:
        if block.tag == "team-file":
            (self.cwd / str(block.file)).write_text(block.body)
        elif block.tag == "team-serve":
            self.serve(block)
        else:
            if block.tag == "team-laptop":
                self.make_laptop_history()
            self.run(block)

    def run(self, block: Block) -> None:
        """Run a block in bash (-euo pipefail) and keep what it exported for the next ones."""
        env_file = self.cwd.parent / "exported.env"
        process = subprocess.Popen(
            ["bash", "-c", f"set -euo pipefail\n{block.body}\nenv -0 > {env_file}\n"],
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=BLOCK_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
            stderr += f"\n(killed after {BLOCK_TIMEOUT:.0f} s)"
        shell = Shell(block, process.returncode, stdout, stderr)
        self.shells.append(shell)
        assert process.returncode == 0, shell.describe()
        exported = env_file.read_text().split("\0")
        self.env = dict(item.split("=", 1) for item in exported if "=" in item)
        for name in SHELL_ONLY:
            self.env.pop(name, None)

    def serve(self, block: Block) -> None:
        """Start the block, read the dashboard's URL, ask it with and without the token, and
        stop it (Ctrl-C, then a kill)."""
        process = subprocess.Popen(
            ["bash", "-c", f"set -euo pipefail\n{block.body}"],
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self.dashboard.printed = read_until(process, "Press Ctrl-C", SERVE_TIMEOUT)
            found = re.search(r"Dashboard: (http://\S+?:(\d+)/\S*)", self.dashboard.printed)
            assert found, f"docs/team.md:{block.line} printed no URL:\n{self.dashboard.printed}"
            self.dashboard.url = found[1]
            runs = f"http://127.0.0.1:{found[2]}/api/runs"
            for name, token in [
                ("token", self.secrets["dashboard-token"]),
                ("no token", None),
                ("wrong token", "x" * 32),
            ]:
                self.dashboard.answers[name] = get(runs, token)
        finally:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def branchwork(self, *args: str, env: dict[str, str] | None = None) -> Any:
        """A branchwork command of the test's own (not the page's), in the page's environment."""
        return subprocess.run(
            ["branchwork", *args],
            cwd=self.cwd,
            env=env or self.env,
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT,
        )

    def runs(self, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
        listed = self.branchwork("runs", "list", "-o", "json", env=env)
        assert listed.returncode == 0, listed.stderr
        return list(json.loads(listed.stdout))

    def step_outputs(self, run: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """The output of each of the run's steps, by invocation id, as `branchwork artifacts
        list` shows it (uri, content hash, ...)."""
        shown = self.branchwork("runs", "show", run["id"], "-o", "json")
        assert shown.returncode == 0, shown.stderr
        listed = self.branchwork("artifacts", "list", "--pipeline", run["pipeline"], "-o", "json")
        assert listed.returncode == 0, listed.stderr
        versions = {version["id"]: version for version in json.loads(listed.stdout)}
        steps = json.loads(shown.stdout)["steps"]
        return {step["invocation_id"]: versions[step["outputs"]["output"]] for step in steps}

    def make_laptop_history(self) -> None:
        """A run in the laptop's own store (SQLite under BRANCHWORK_HOME) before it moves."""
        laptop = {k: v for k, v in self.env.items() if k != "BRANCHWORK_STORE_URL"}
        done = self.branchwork("run", "team_pipeline.py:shard_report", "-p", "shards=2", env=laptop)
        assert done.returncode == 0, done.stdout + done.stderr
        [self.laptop_run] = self.runs(env=laptop)


def read_until(process: subprocess.Popen[bytes], text: str, timeout: float) -> str:
    """What a server printed up to `text` (bounded; raw reads, so no line waits in a buffer
    that select() cannot see)."""
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    printed = b""
    deadline = time.monotonic() + timeout
    while text.encode() not in printed:
        left = deadline - time.monotonic()
        if left <= 0 or process.poll() is not None:
            raise AssertionError(f"the dashboard did not start:\n{printed.decode()}")
        if selector.select(timeout=left):
            printed += os.read(process.stdout.fileno(), 65536)
    return printed.decode()


def get(url: str, token: str | None) -> tuple[int, Any]:
    """The status and JSON of a GET, with the token as a bearer when there is one."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def kill_marked(value: str) -> None:
    """Kill every process whose environment carries MARKER=value (bounded): what the page's
    commands started, Ray's daemons and workers included, and nothing else."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        marked = []
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error, OSError):
                if process.environ().get(MARKER) == value:
                    marked.append(process)
        if not marked:
            return
        for process in marked:
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(marked, timeout=5)
    raise AssertionError("processes started by docs/team.md's commands outlived the test")


def shell_environment(home: Path, ray_tmp: Path, marker: str) -> dict[str, str]:
    """A user's shell: this venv's and PostgreSQL's tools first, none of the caller's
    branchwork, AWS, Ray or libpq settings, a home of its own."""
    dropped = ("BRANCHWORK_", "AWS_", "RAY_", "PG")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    tools = [str(Path(sys.executable).parent), str(server_binaries())]
    env.update(
        PATH=os.pathsep.join([*tools, env.get("PATH", "")]),
        HOME=str(home),
        BRANCHWORK_HOME=str(home / ".branchwork"),
        RAY_TMPDIR=str(ray_tmp),
        RAY_USAGE_STATS_ENABLED="0",
        PIP_NO_INDEX="1",  # `pip install` then only checks what is installed: no network
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PYTHONUNBUFFERED="1",
    )
    env[MARKER] = marker
    return env


@pytest.fixture(scope="module")
def team_database() -> Iterator[TcpPostgres]:
    bin_dir = server_binaries()
    if bin_dir is None:
        pytest.skip("PostgreSQL server binaries are not installed (apt-get install postgresql)")
    with TcpPostgres(bin_dir) as server:
        server.require_passwords()
        server.start()
        yield server


@pytest.fixture(scope="module")
def walkthrough(team_database, s3_server, tmp_path_factory) -> Iterator[Walkthrough]:
    """docs/team.md followed from top to bottom; the servers stay up for the tests."""
    root = tmp_path_factory.mktemp("team")
    home, cwd, secrets = root / "home", root / "work", root / "secrets"
    for folder in (home, cwd, secrets):
        folder.mkdir()
    (secrets / "team-s3").write_text(s3_server.secret + "\n")  # issued by the object store
    site = {
        "DB_HOST": "127.0.0.1",
        "DB_PORT": str(team_database.port),
        "S3_ENDPOINT": s3_server.endpoint_url,
        "S3_REGION": REGION,
        "S3_BUCKET": s3_server.create_bucket(f"team-{uuid.uuid4().hex[:8]}"),
        "S3_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "RAY_HEAD_IP": "127.0.0.1",
        "RAY_PORT": str(free_port()),
        "DASHBOARD_PORT": "0",
        "SECRETS": str(secrets),
    }
    ray_tmp = Path(tempfile.mkdtemp(prefix="bwt-", dir="/tmp"))  # short: Ray's socket paths
    marker = uuid.uuid4().hex
    walk = Walkthrough({**shell_environment(home, ray_tmp, marker), **site}, cwd, secrets)
    try:
        for block in doc_blocks():
            if block.tag == "team-site":
                exported = re.findall(r"\b([A-Z][A-Z0-9_]*)=", block.body)
                assert sorted(exported) == sorted(site), block.body
            else:
                walk.follow(block)
        yield walk
    finally:
        kill_marked(marker)
        shutil.rmtree(ray_tmp, ignore_errors=True)


# ---- the page itself ----------------------------------------------------------------------


def test_every_block_is_run_by_this_test_and_none_passes_a_secret():
    blocks = doc_blocks()
    tags = [block.tag for block in blocks]
    assert tags.count("team-site") == 1 and tags.count("team-serve") == 1
    assert "team-laptop" in tags and "team-file" in tags
    for block in blocks:  # secrets are read from files inside the commands, never passed
        assert not re.search(r"--(password|secret|token)\b(?!-)", block.body), block.body
    text = DOC.read_text(encoding="utf-8")
    assert all(f"`{name}`" in text for name in SECRET_FILES)


def declared_extras() -> set[str]:
    """The extras pyproject.toml declares (an editable install's metadata may be older)."""
    text = (DOC.parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    return set(re.findall(r"^([a-z0-9_-]+) = \[", section, re.MULTILINE))


# ---- what the page's commands did ---------------------------------------------------------


def test_the_install_line_names_extras_that_exist_and_are_installed(walkthrough):
    pip = walkthrough.containing("pip install")  # it succeeded without an index
    named = re.search(r'"branchwork\[([^\]]+)\]"', pip.block.body)
    assert named, pip.block.body
    assert set(named[1].split(",")) <= declared_extras()


def test_the_store_is_the_teams_postgresql_behind_its_password(walkthrough):
    upgrade = walkthrough.containing("branchwork db upgrade")
    url = f"postgresql+psycopg://branchwork@127.0.0.1:{walkthrough.env['DB_PORT']}/branchwork"
    assert upgrade.stdout.startswith(f"Upgraded {url} from revision none to ")
    status = walkthrough.branchwork("db", "status")
    assert status.returncode == 0, status.stderr
    assert "up to date" in status.stdout
    wrong = walkthrough.branchwork("db", "status", env={**walkthrough.env, "PGPASSWORD": "nope"})
    assert wrong.returncode == 1
    assert 'password authentication failed for user "branchwork"' in wrong.stderr


def test_both_ray_nodes_joined_and_the_cluster_needs_the_token(walkthrough):
    assert walkthrough.containing("ray status").stdout.count("Active:") == 1
    address = f"--address=127.0.0.1:{walkthrough.env['RAY_PORT']}"
    deadline = time.monotonic() + 60  # a node is listed a few seconds after its `ray start`
    while True:
        status = subprocess.run(
            ["ray", "status", address],
            env=walkthrough.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        active = status.stdout.split("Active:", 1)[-1].split("Pending:", 1)[0]
        nodes = len(re.findall(r"^\s*1 node_", active, re.MULTILINE))
        if nodes == 2 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert nodes == 2, status.stdout
    without = {k: v for k, v in walkthrough.env.items() if not k.startswith("RAY_AUTH")}
    refused = subprocess.run(
        ["ray", "status", address],
        env=without,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0
    assert "token is missing or incorrect" in refused.stdout + refused.stderr


def test_the_pipeline_ran_on_ray_with_its_artifacts_in_the_bucket(walkthrough, s3_server):
    shell = walkthrough.containing("branchwork run team_pipeline.py")
    [run] = [run for run in walkthrough.runs() if run["orchestrator"] == "ray"]
    assert run["status"] == "completed" and run["is_dynamic"] is True
    assert run["name"] in shell.stdout  # in what `branchwork runs list` printed on the page
    outputs = walkthrough.step_outputs(run)
    shards = shard_outputs(outputs)
    assert len(shards) == 4
    assert_in_the_bucket(walkthrough, s3_server, shards)
    # the page says: the count and the summary are small, kept in the metadata store
    assert set(outputs) == {"count_shards", "summarize"}
    assert_inline(outputs.values())
    assert [output["id"] for output in run["outputs"]] == [outputs["summarize"]["id"]]
    loaded = walkthrough.branchwork("artifacts", "load", outputs["summarize"]["id"])
    assert loaded.returncode == 0, loaded.stderr
    assert ast.literal_eval(loaded.stdout) == {"shards": 4, "rows": 4000, "total": sum(range(4000))}


def shard_outputs(outputs: dict[str, Any]) -> list[Any]:
    """The make_shard outputs, in invocation order, taken out of `outputs`."""
    return [outputs.pop(name) for name in sorted(outputs) if name.startswith("make_shard")]


def assert_in_the_bucket(walkthrough: Walkthrough, s3_server: Any, outputs: list[Any]) -> None:
    for output in outputs:
        assert output["uri"].startswith(f"s3://{walkthrough.env['S3_BUCKET']}/branchwork/")
        assert s3_server.filesystem().ls(output["uri"]), output["uri"]


def assert_inline(outputs: Any) -> None:
    for output in outputs:
        assert output["uri"] == f"inline://{output['content_hash']}", output


def test_the_laptops_history_moved_into_the_team_store_and_bucket(walkthrough, s3_server):
    laptop = walkthrough.laptop_run
    moved = {run["id"]: run for run in walkthrough.runs()}[laptop["id"]]
    assert moved["name"] == laptop["name"] and moved["status"] == "completed"
    assert moved["orchestrator"] == "local"
    outputs = walkthrough.step_outputs(moved)
    shards = shard_outputs(outputs)
    assert len(shards) == 2
    assert_in_the_bucket(walkthrough, s3_server, shards)
    assert set(outputs) == {"count_shards", "summarize"}
    assert_inline(outputs.values())  # they came with their rows
    loaded = walkthrough.branchwork("artifacts", "load", shards[1]["id"])
    assert loaded.returncode == 0, loaded.stderr
    assert ast.literal_eval(loaded.stdout) == list(range(1000, 2000))  # read from its copy
    migrate = walkthrough.containing("migrate-to")
    assert re.search(
        r"^Artifacts: 2 copied, .*; 2 small ones are kept in the metadata store itself",
        migrate.stdout,
        re.MULTILINE,
    ), migrate.stdout


def test_the_dashboard_shows_the_team_its_runs_with_the_token_only(walkthrough):
    board = walkthrough.dashboard
    assert board.url.endswith(f"/?token={walkthrough.secrets['dashboard-token']}")
    status, answer = board.answers["token"]
    assert status == 200
    assert {run["id"] for run in answer["items"]} == {run["id"] for run in walkthrough.runs()}
    assert len(answer["items"]) == 2  # the team's run and the laptop's
    assert board.answers["no token"][0] == 401
    assert board.answers["wrong token"][0] == 401


def test_no_secret_is_in_the_team_database(walkthrough, team_database):
    dump = team_database.dump("branchwork")
    assert '"secret_env": "TEAM_S3_SECRET"' in dump  # the reference is stored
    assert walkthrough.env["S3_ENDPOINT"] in dump
    for name, secret in walkthrough.secrets.items():
        assert len(secret) >= 32, name
        assert secret not in dump, f"the {name} secret is in the team's database"
