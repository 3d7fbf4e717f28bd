"""Base for orchestrators that run the orchestration loop as a job from an image.

A subclass says how to launch a job (`_submit_job`) and wait for it (`_wait_for_job`); the
job runs `python -m branchwork.orchestrators.pipeline_runner` with the environment it is
handed, which is all it needs. Static pipelines are supported as they come. Dynamic ones
only when the subclass implements `submit_dynamic_pipeline` (usually a few lines, as in
`examples/custom_orchestrator/`): `supports_dynamic_pipelines` reports exactly that.
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING, Any

from branchwork.orchestrators.base import (
    ORCHESTRATOR_RUN_ID_ENV,
    BaseOrchestrator,
    SubmissionResult,
)

if TYPE_CHECKING:
    from branchwork.models import PipelineRunResponse, PipelineSnapshotResponse
    from branchwork.stack import Stack


class ContainerizedOrchestrator(BaseOrchestrator):
    """See the module docstring; `image` names what the jobs run from."""

    flavor = "containerized"

    def __init__(
        self, name: str | None = None, *, image: str = "branchwork:latest", **config: Any
    ) -> None:
        super().__init__(name, image=image, **config)

    def get_image(self, snapshot: PipelineSnapshotResponse) -> str:
        """The image the orchestration job (and isolated step jobs) run from."""
        return str(self.config["image"])

    def _get_entrypoint_command(self) -> list[str]:
        """The command of the orchestration job."""
        return ["python", "-m", "branchwork.orchestrators.pipeline_runner"]

    def _submit_job(
        self,
        image: str,
        command: list[str] | None = None,
        environment: dict[str, str] | None = None,
        cpu_count: float = 1,
        memory: str = "2GB",
    ) -> Any:
        """Launch one job; return a handle for `_wait_for_job`."""
        raise NotImplementedError(f"{type(self).__name__} must implement _submit_job()")

    def _wait_for_job(self, job: Any) -> Any:
        """Block until the job has ended."""
        raise NotImplementedError(f"{type(self).__name__} must implement _wait_for_job()")

    def submit_pipeline(
        self,
        snapshot: PipelineSnapshotResponse,
        stack: Stack,
        environment: dict[str, str],
        placeholder_run: PipelineRunResponse | None = None,
    ) -> SubmissionResult | None:
        job = self._submit_job(
            image=self.get_image(snapshot),
            command=self._get_entrypoint_command(),
            environment=self.static_run_environment(environment),
        )
        return SubmissionResult(wait_for_completion=lambda: self._wait_for_job(job))

    def get_orchestrator_run_id(self) -> str:
        """Static: the id set in the environment of every job of the run. Dynamic: the
        orchestration job creates the run, so its host name is unique enough."""
        return os.environ.get(ORCHESTRATOR_RUN_ID_ENV) or socket.gethostname()
