"""The local-process orchestrator: the orchestration loop in a process of its own.

`submit_*` launches `python -m branchwork.orchestrators.pipeline_runner` with the
environment it is handed — the same contract a container backend has — and returns a
`SubmissionResult` to wait on. In that process, steps with `runtime="isolated"` (or, unless
`runtime="inline"`, any resource settings) run in processes of their own; the rest run in
the loop's threads. Ctrl-C / SIGTERM stop the run: step processes are ended and the run is
recorded STOPPED.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from typing import TYPE_CHECKING, Any

from branchwork.orchestrators.base import ORCHESTRATOR_RUN_ID_ENV, SubmissionResult
from branchwork.orchestrators.local import LocalOrchestrator
from branchwork.runtime.launchers import (
    InlineLauncher,
    Launcher,
    ProcessLauncher,
    RoutingLauncher,
)

if TYPE_CHECKING:
    from branchwork.models import PipelineRunResponse, PipelineSnapshotResponse
    from branchwork.stack import Stack

RUNNER_COMMAND = [sys.executable, "-m", "branchwork.orchestrators.pipeline_runner"]


def runs_isolated(step: Any) -> bool:
    if step.runtime is not None:
        return bool(step.runtime == "isolated")
    return not step.resources.is_empty


class LocalProcessOrchestrator(LocalOrchestrator):
    """See the module docstring. Accepts the same capacity settings as `LocalOrchestrator`."""

    flavor = "local_process"

    def submit_pipeline(
        self,
        snapshot: PipelineSnapshotResponse,
        stack: Stack,
        environment: dict[str, str],
        placeholder_run: PipelineRunResponse | None = None,
    ) -> SubmissionResult | None:
        return self._launch(snapshot, self.static_run_environment(environment))

    def submit_dynamic_pipeline(
        self,
        snapshot: PipelineSnapshotResponse,
        stack: Stack,
        environment: dict[str, str],
        placeholder_run: PipelineRunResponse | None = None,
    ) -> SubmissionResult | None:
        return self._launch(snapshot, environment)

    @property
    def runs_loop_in_caller(self) -> bool:
        return False  # its loop runs in the process it launches

    def get_orchestrator_run_id(self) -> str:
        # Static: shared by every step through the environment. Dynamic: the orchestration
        # process creates the run, so unique within it is enough.
        return os.environ.get(ORCHESTRATOR_RUN_ID_ENV) or f"{socket.gethostname()}-{os.getpid()}"

    def _launch(
        self, snapshot: PipelineSnapshotResponse, environment: dict[str, str]
    ) -> SubmissionResult:
        """The runner in a session of its own: a terminal's Ctrl-C reaches the caller only,
        which asks the run to stop through the store (and ends the runner if it must)."""
        working_dir = snapshot.working_dir
        process = subprocess.Popen(
            RUNNER_COMMAND,
            env={**os.environ, **environment},
            cwd=working_dir if working_dir and os.path.isdir(working_dir) else None,
            start_new_session=True,
        )

        def stop() -> None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

        return SubmissionResult(process.wait, {"pid": process.pid}, stop)

    def step_launcher(self) -> Launcher:
        """Isolated steps in processes of their own, the others in the loop's threads."""
        return RoutingLauncher(InlineLauncher(self.max_workers), ProcessLauncher(), runs_isolated)
