"""The dashboard's resume of a failed, stopped or paused run (its other action, stopping a
running run, is `metadata.runs.stop_run`).

A resume is `branchwork runs resume RUN --no-progress`, started as a process of its own (in
a session of its own), so it outlives the request and the dashboard itself, and loads the
user's pipeline there rather than in the server. The request waits until that process has
reopened the run (or ended, or `START_WAIT` passed): a page that follows the run then sees
it running, and a resume that could not start (its pipeline no longer imports) answers with
the command's error line. What the command prints goes to `<home>/dashboard/resume-<run id>.log`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from branchwork.config.home import home_dir
from branchwork.exceptions import OrchestratorError
from branchwork.metadata.lost import not_resumable_message
from branchwork.metadata.run_pages import run_records
from branchwork.models.responses import ExecutionStatus

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from branchwork.models.responses import PipelineRunResponse

RESUMABLE = ("failed", "stopped", "paused")  # paused: once answered, or timed out
START_WAIT = 20.0  # seconds a resume request waits for its process to reopen the run
POLL = 0.1


def resume(engine: Engine, run: PipelineRunResponse) -> str:
    """Start `branchwork runs resume` on `run` in its own process; return the run's status
    once that process has reopened it (or finished it already). An OrchestratorError with
    the command's error if it could not."""
    if str(run.status) not in RESUMABLE:
        raise OrchestratorError(not_resumable_message(run))
    log = resume_log(run.id)
    process = _start_resume(engine, run, log)
    deadline = time.monotonic() + START_WAIT
    while True:
        ended = process.poll() is not None  # before the read, so the read sees its last word
        current = _current(engine, run.id)
        if current is None:
            return "deleted"
        if _reopened(run, current):
            return str(current.status)
        if ended:
            raise OrchestratorError(f"Resuming run '{run.name}' failed: {_error_line(log)}")
        if time.monotonic() >= deadline:
            return str(current.status)  # still starting (a slow import): the page follows it
        time.sleep(POLL)


def resume_log(run_id: str) -> Path:
    """Where the output of the last resume of a run started here goes."""
    folder = home_dir() / "dashboard"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"resume-{run_id}.log"


def _start_resume(engine: Engine, run: PipelineRunResponse, log: Path) -> subprocess.Popen[bytes]:
    """`branchwork runs resume` in a new session, on this dashboard's store (the command
    carries on from the folder the run was started in); reaped by a thread when it ends."""
    environment = {
        **os.environ,
        "BRANCHWORK_STORE_URL": engine.url.render_as_string(hide_password=False),
        "BRANCHWORK_HOME": str(home_dir()),
    }
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "branchwork.cli", "runs", "resume", run.id, "--no-progress"],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,
        )
    threading.Thread(target=process.wait, name="branchwork-resume-reaper", daemon=True).start()
    return process


def _current(engine: Engine, run_id: str) -> PipelineRunResponse | None:
    with engine.connect() as conn:
        found = run_records(conn, [run_id])
    return found[0] if found else None


def _reopened(before: PipelineRunResponse, now: PipelineRunResponse) -> bool:
    """Whether the run was reopened since `before`: running again, or finished anew."""
    return not ExecutionStatus(now.status).is_finished or now.end_time != before.end_time


def _error_line(log: Path) -> str:
    """The command's `Error: ...` line (its last line when there is none)."""
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error: ")]
    if errors:
        return errors[-1].removeprefix("Error: ")
    return lines[-1] if lines else "the command printed nothing"
