"""`branchwork dashboard` as a user starts it: a real server in a subprocess on a free port
(bounded, always killed), its printed URL, the token off loopback, its one-line errors, and
a live run followed as the pages follow it (asking whether it changed) and stopped from the
API."""

from __future__ import annotations

import queue
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from branchwork import Client
from processes import Spawned, python_env, wait_until

BRANCHWORK = str(Path(sys.executable).with_name("branchwork"))
URL_LINE = re.compile(r"^Dashboard: (http://(\S+?):(\d+)/(?:\?token=(\S+))?)$")
STARTUP_TIMEOUT = 30.0
ACTION = {"X-Branchwork-Action": "1"}


class Output:
    """The lines a server prints, read by a thread as they come (a pipe read ahead of
    `select` would hide lines already buffered)."""

    def __init__(self, server: Spawned) -> None:
        self.server = server
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        stdout = self.server.process.stdout
        assert stdout is not None
        for line in stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next(self, timeout: float) -> str:
        """The next line, or an AssertionError in time (the server is then killed)."""
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.server.kill()
            raise AssertionError(f"the dashboard printed nothing more in {timeout}s") from None
        assert line is not None, "the dashboard exited"
        return line


@contextmanager
def dashboard(home: Path, *args: str, **env: str) -> Iterator[tuple[Output, re.Match[str]]]:
    """`branchwork dashboard --port 0 ARGS`, running until the block ends (then killed);
    yields its output and the match of the URL line it printed first."""
    command = [BRANCHWORK, "dashboard", "--port", "0", "--no-open", *args]
    with Spawned(command, env=python_env(home, **env)) as server:
        output = Output(server)
        first = output.next(STARTUP_TIMEOUT)
        found = URL_LINE.match(first)
        assert found, first
        yield output, found


def local(found: re.Match[str], path: str) -> str:
    """`path` on the server, through loopback whatever address it listens on."""
    return f"http://127.0.0.1:{found.group(3)}{path}"


def test_it_prints_its_url_serves_the_runs_and_stops_on_ctrl_c(pipelines, project, branchwork_home):
    pipelines("fan")(folder=str(project), n=2)
    with dashboard(branchwork_home) as (output, found):
        assert found.group(2) == "127.0.0.1" and found.group(4) is None
        assert output.next(5) == f"Store:     sqlite:///{branchwork_home / 'branchwork.db'}"
        assert output.next(5) == "Press Ctrl-C to stop."
        runs = httpx.get(local(found, "/api/runs"), timeout=10)
        assert runs.status_code == 200
        assert [run["pipeline"] for run in runs.json()["items"]] == ["fan"]
        page = httpx.get(found.group(1), timeout=10)
        assert page.status_code == 200 and "<title>branchwork dashboard</title>" in page.text

        output.server.signal(signal.SIGINT)
        code = output.server.process.wait(15)
        stderr = output.server.process.stderr.read()
        assert code == 130, stderr  # as `branchwork run` after Ctrl-C
        assert stderr == ""


def test_off_loopback_every_request_needs_the_token(branchwork_home):
    with dashboard(branchwork_home, "--host", "0.0.0.0") as (output, found):
        token = found.group(4)
        assert token and len(token) >= 32
        assert output.next(5).startswith("Store:")
        assert output.next(5) == (
            "A token was generated for this server; set BRANCHWORK_DASHBOARD_TOKEN to choose one."
        )
        runs = local(found, "/api/runs")
        bearer = {"Authorization": f"Bearer {token}"}

        missing = httpx.get(runs, timeout=10)
        assert missing.status_code == 401
        assert missing.json()["detail"].startswith("This dashboard needs its token")
        assert httpx.get(runs, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(runs + "?token=wrong", timeout=10).status_code == 401
        assert httpx.get(runs, headers=bearer, timeout=10).status_code == 200
        opened = httpx.get(local(found, f"/?token={token}"), timeout=10)
        assert opened.status_code == 200
        assert opened.headers["set-cookie"].startswith(f"branchwork_dashboard_{found.group(3)}=")

        no_header = httpx.post(local(found, "/api/runs/latest/stop"), headers=bearer)
        assert no_header.status_code == 403
        unknown = httpx.post(local(found, "/api/runs/nope/stop"), headers={**bearer, **ACTION})
        assert unknown.status_code == 404
        assert unknown.json()["detail"] == (
            "No pipeline run with id or name 'nope', nor one starting with it; "
            "`branchwork runs list` shows the runs."
        )


def test_a_token_from_the_environment_is_the_one_required(branchwork_home):
    chosen = "team-token-0123456789"
    with dashboard(branchwork_home, "--host", "0.0.0.0", BRANCHWORK_DASHBOARD_TOKEN=chosen) as (
        output,
        found,
    ):
        assert found.group(4) == chosen
        assert output.next(5).startswith("Store:")
        assert output.next(5) == "Press Ctrl-C to stop."
        runs = local(found, "/api/runs")
        assert httpx.get(runs, headers={"Authorization": f"Bearer {chosen}"}).status_code == 200
        assert httpx.get(runs, timeout=10).status_code == 401


def test_a_bad_token_or_a_busy_port_is_one_error_line(branchwork_home):
    command = [BRANCHWORK, "dashboard", "--host", "0.0.0.0", "--no-open"]
    env = python_env(branchwork_home, BRANCHWORK_DASHBOARD_TOKEN="short")
    with Spawned(command, env=env) as refused:
        code, _, stderr = refused.wait(STARTUP_TIMEOUT)
    assert code == 1
    assert stderr.strip() == (
        "Error: BRANCHWORK_DASHBOARD_TOKEN must be at least 16 characters among letters, "
        "digits and . _ ~ - (or unset it: a token is then generated)."
    )

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [BRANCHWORK, "dashboard", "--port", str(port), "--no-open"]
        with Spawned(command, env=python_env(branchwork_home)) as busy:
            code, _, stderr = busy.wait(STARTUP_TIMEOUT)
    assert code == 1
    assert stderr.strip() == (
        f"Error: Cannot listen on 127.0.0.1:{port}: Address already in use; pass another "
        "--port (0 picks a free one)."
    )


def changes(base: str, run: str, timeout: float) -> Iterator[dict]:
    """The run's answer each time it changed, as a page follows it: asking every 0.1 s
    whether it changed since the token of the last answer, until it is no longer live (at
    most `timeout` seconds)."""
    shown = httpx.get(f"{base}/api/runs/{run}", timeout=10).json()
    token = shown["changes"]["token"]
    deadline = time.monotonic() + timeout
    yield shown
    while True:
        assert time.monotonic() < deadline, f"run {run} still live after {timeout}s"
        time.sleep(0.1)
        asked = httpx.get(f"{base}/api/runs/{run}/changes", params={"since": token}, timeout=10)
        answer = asked.json()
        if answer["changed"]:
            shown = httpx.get(f"{base}/api/runs/{run}", timeout=10).json()
            yield shown
        token = answer["token"]
        if not answer["live"]:
            return


def test_a_live_run_grows_as_it_is_followed_and_stops_from_the_api(project, branchwork_home):
    target = f"{project / 'dash_pipelines.py'}:drip"
    runner = [BRANCHWORK, "run", target, "-p", f"folder={project}", "--no-progress"]
    with (
        dashboard(branchwork_home) as (_, found),
        Spawned(runner, env=python_env(branchwork_home), cwd=project) as pipeline,
    ):

        def running_run() -> str | None:
            items = httpx.get(local(found, "/api/runs"), timeout=10).json()["items"]
            return items[0]["name"] if items and items[0]["status"] == "running" else None

        wait_until(running_run, 60, "the drip run to start")
        run = running_run()
        seen: list[tuple[int, int]] = []  # (gates discovered, gates completed) as they changed
        for shown in changes(local(found, ""), run, 60):
            gates = {s["step_name"]: s for s in shown["steps"]}.get("gate")
            if gates is None:
                continue
            state = (gates["total"], gates["counts"]["completed"])
            if seen and seen[-1] == state:
                continue
            seen.append(state)
            if state == (1, 0):
                (project / "go-0").touch()  # gate_2 gets discovered once gate is done
            elif state == (2, 1):
                stop = httpx.post(local(found, f"/api/runs/{run}/stop"), headers=ACTION)
                assert stop.json() == {"run": run, "stop": "graceful"}
                assert stop.status_code == 202
                time.sleep(1.5)  # the loop looks for a stop request every 0.2 s
                (project / "go-1").touch()  # the running gate finishes; nothing new starts
        assert shown["run"]["status"] == "stopped"
        assert seen[0] == (1, 0) and (2, 1) in seen and seen[-1] == (2, 2)
        code, _, stderr = pipeline.wait(30)
        assert code != 0 and "Error" in stderr
    record = Client().get_pipeline_run(run)
    assert record.status == "stopped"
    assert sorted(record.steps) == ["gate", "gate_2"]


def test_a_lost_run_reads_failed_everywhere_and_stays_unwritten(
    project, api, branchwork_home, monkeypatch
):
    monkeypatch.setenv("BRANCHWORK_HEARTBEAT_SECONDS", "0.2")  # lost after 1.2 s of silence
    monkeypatch.setenv("BRANCHWORK_STORE_RETRY_SECONDS", "0.5")  # and of the retry window
    target = f"{project / 'dash_pipelines.py'}:drip"
    env = python_env(branchwork_home, BRANCHWORK_HEARTBEAT_SECONDS="0.2")
    with Spawned([BRANCHWORK, "run", target, "-p", f"folder={project}"], env=env) as runner:
        wait_until(lambda: gate_running(branchwork_home), 60, "the first gate to run")
        runner.signal(signal.SIGKILL)
        runner.wait(30)
    time.sleep(1.5)
    client = api()

    detail = client.get("/api/runs/latest").json()
    assert detail["run"]["status"] == "failed"
    assert detail["run"]["exception_type"] == "OrchestrationLost"
    assert detail["counts"]["failed"] == 1 and detail["counts"]["running"] == 0
    [lost] = client.get("/api/runs/latest/failed").json()["items"]
    assert (lost["invocation"], lost["exception_type"]) == ("gate", "OrchestrationLost")
    assert lost["error"] == "Its orchestration was lost (the loop's process died) while it ran."
    step = client.get("/api/runs/latest/steps/gate").json()
    assert step["step"]["status"] == "failed"
    assert step["step"]["exception_type"] == "OrchestrationLost"
    assert client.get("/api/runs/latest/changes").json()["live"] is False
    # Read as failed, written by no reader: the rows say what the dead loop left.
    with sqlite3.connect(branchwork_home / "branchwork.db") as conn:
        assert conn.execute("SELECT status FROM pipeline_run").fetchall() == [("running",)]
        assert conn.execute("SELECT status FROM step_run").fetchall() == [("running",)]


def gate_running(home: Path) -> bool:
    try:
        with sqlite3.connect(home / "branchwork.db") as conn:
            found = conn.execute("SELECT name, status FROM step_run").fetchall()
    except sqlite3.OperationalError:  # not created yet
        return False
    return found == [("gate", "running")]


def test_neither_import_branchwork_nor_the_cli_loads_the_web_framework():
    code = (
        "import sys, branchwork, branchwork.cli.app; "
        "print([m for m in ('fastapi', 'starlette', 'uvicorn') if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "[]"), done.stderr
