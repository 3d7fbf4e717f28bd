"""The local orchestrator: the orchestration loop in the caller's process, steps in threads.

Admission honours each step's `ResourceSettings` against the machine's detected capacity
(override with `cpu_count=`, `memory=`, `gpu_count=`). Steps that ask for nothing only need
a free worker thread (`max_workers`).
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from typing import TYPE_CHECKING

from branchwork.config.resources import parse_memory
from branchwork.exceptions import OrchestratorError
from branchwork.orchestrators.base import BaseOrchestrator, SubmissionResult
from branchwork.orchestrators.capacity import detect_capacity
from branchwork.runtime.engine import FailureMode, Request
from branchwork.runtime.launchers import InlineLauncher, Launcher
from branchwork.runtime.runner import RunSession

if TYPE_CHECKING:
    from branchwork.models import PipelineRunResponse, PipelineSnapshotResponse
    from branchwork.stack import Stack

_current_run_id: ContextVar[str | None] = ContextVar("branchwork_local_run_id", default=None)


class LocalOrchestrator(BaseOrchestrator):
    """Runs pipelines in this process; see the module docstring."""

    flavor = "local"

    def __init__(
        self,
        name: str | None = None,
        *,
        max_workers: int | None = None,
        cpu_count: float | None = None,
        memory: str | int | None = None,
        gpu_count: float | None = None,
        failure_mode: FailureMode | str = FailureMode.STOP_ON_FAILURE,
    ) -> None:
        super().__init__(
            name,
            max_workers=max_workers,
            cpu_count=cpu_count,
            memory=memory,
            gpu_count=gpu_count,
            failure_mode=FailureMode(failure_mode).value,
        )
        detected = detect_capacity()
        self.capacity = Request(
            float(cpu_count) if cpu_count is not None else detected.cpu,
            parse_memory(memory) if memory is not None else detected.memory,
            float(gpu_count) if gpu_count is not None else detected.gpu,
        )
        self.max_workers = max(16, 4 * int(detected.cpu)) if max_workers is None else max_workers
        if self.max_workers < 1:
            raise OrchestratorError(f"max_workers must be at least 1, got {max_workers}")
        self.failure_mode = FailureMode(failure_mode)

    hosts_loops = True

    def submit_pipeline(
        self,
        snapshot: PipelineSnapshotResponse,
        stack: Stack,
        environment: dict[str, str],
        placeholder_run: PipelineRunResponse | None = None,
    ) -> SubmissionResult | None:
        """Run the loop here, static or dynamic alike; it is done when this returns."""
        if placeholder_run is None:
            raise OrchestratorError("The local orchestrator needs the placeholder run.")
        token = _current_run_id.set(self.new_run_id())
        try:
            self.run_loop(snapshot, placeholder_run, stack, _current_run_id.get() or "")
        finally:
            _current_run_id.reset(token)
        return None

    submit_dynamic_pipeline = submit_pipeline  # one loop for both kinds of pipeline

    @property
    def runs_loop_in_caller(self) -> bool:
        return True

    def new_run_id(self) -> str:
        return f"local-{uuid.uuid4().hex}"

    def get_orchestrator_run_id(self) -> str:
        run_id = _current_run_id.get()
        if run_id is None:
            raise OrchestratorError(
                f"Orchestrator '{self.name}' is not running a pipeline in this context."
            )
        return run_id

    def step_launcher(self) -> Launcher:
        """How the loop launches steps: in its own threads."""
        return InlineLauncher(self.max_workers)

    def loop_session(
        self,
        snapshot: PipelineSnapshotResponse,
        run: PipelineRunResponse,
        stack: Stack,
        orchestrator_run_id: str,
    ) -> RunSession:
        return RunSession(
            snapshot,
            run,
            stack,
            launcher=self.step_launcher(),
            capacity=self.capacity,
            max_workers=self.max_workers,
            orchestrator_run_id=orchestrator_run_id,
            failure_mode=self.failure_mode,
        )
