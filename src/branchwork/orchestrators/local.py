"""The local orchestrator: the orchestration loop in the caller's process, steps in threads.

Admission honours each step's `ResourceSettings` against the machine's detected capacity
(override with `cpu_count=`, `memory=`, `gpu_count=`). Steps that ask for nothing only need
a free worker thread (`max_workers`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from branchwork.config.resources import parse_memory
from branchwork.exceptions import OrchestratorError
from branchwork.orchestrators.base import BaseOrchestrator, SubmissionResult
from branchwork.orchestrators.capacity import detect_capacity
from branchwork.runtime.events import FailureMode, Request
from branchwork.runtime.launchers import InlineLauncher, Launcher
from branchwork.runtime.requests import RunRequest
from branchwork.runtime.runner import RunSession, current_orchestrator_run_id

if TYPE_CHECKING:
    from branchwork.models import PipelineRunResponse, PipelineSnapshotResponse
    from branchwork.stack import Stack


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
        """Run the loop here, static or dynamic alike; it is done when this returns. (A
        pipeline called in this process hands its run to `run_loop` directly, live.)"""
        if placeholder_run is None:
            raise OrchestratorError("The local orchestrator needs the placeholder run.")
        # Handed only a snapshot: its pipeline is imported from the recorded source.
        request = RunRequest.from_source(snapshot, placeholder_run, stack)
        self.run_loop(request, f"{self.flavor}-{placeholder_run.id}")
        return None

    submit_dynamic_pipeline = submit_pipeline  # one loop for both kinds of pipeline

    @property
    def runs_loop_in_caller(self) -> bool:
        return True

    def get_orchestrator_run_id(self) -> str:
        run_id = current_orchestrator_run_id()
        if run_id is None:
            raise OrchestratorError(
                f"Orchestrator '{self.name}' is not running a pipeline in this context."
            )
        return run_id

    def step_launcher(self) -> Launcher:
        """How the loop launches steps: in its own threads."""
        return InlineLauncher(self.max_workers)

    def loop_session(self, request: RunRequest, orchestrator_run_id: str) -> RunSession:
        return RunSession(
            request,
            launcher=self.step_launcher(),
            capacity=self.capacity,
            max_workers=self.max_workers,
            orchestrator_run_id=orchestrator_run_id,
            failure_mode=self.failure_mode,
        )
