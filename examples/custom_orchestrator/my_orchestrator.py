"""A custom orchestrator, following the seed page's `MyOrchestrator(ContainerizedOrchestrator)`.

This machine has no container engine, so a "job" is a subprocess and an "image" is a Python
environment (the interpreter that runs the job). The job is launched with exactly the
`environment` branchwork hands over, nothing inherited: that is the contract a container
backend has too.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Dict, Optional

from branchwork.models import PipelineRunResponse, PipelineSnapshotResponse
from branchwork.orchestrators import ContainerizedOrchestrator, SubmissionResult
from branchwork.stack import Stack


class MyOrchestrator(ContainerizedOrchestrator):
    flavor = "my_orchestrator"

    def get_image(self, snapshot: PipelineSnapshotResponse) -> str:
        """The "image": the interpreter of this virtual environment."""
        return sys.executable

    def submit_dynamic_pipeline(
        self,
        snapshot: PipelineSnapshotResponse,
        stack: Stack,
        environment: Dict[str, str],
        placeholder_run: Optional[PipelineRunResponse] = None,
    ) -> Optional[SubmissionResult]:
        """Submit a dynamic pipeline to the orchestration backend.

        Args:
            snapshot: Pipeline snapshot
            stack: The stack the pipeline runs on
            environment: Environment variables for orchestration container
            placeholder_run: Optional placeholder run

        Returns:
            Submission result with optional wait callback
        """
        # Get the Docker image for the orchestration container
        image = self.get_image(snapshot)

        # The orchestration container runs the pipeline function
        # which discovers and submits steps dynamically
        entrypoint = self._get_entrypoint_command()

        # Launch orchestration container
        job_id = self._submit_job(
            image=image,
            command=entrypoint,
            environment=environment,
            # Orchestration containers typically need more resources
            cpu_count=2,
            memory="4GB",
        )

        return SubmissionResult(wait_for_completion=lambda: self._wait_for_job(job_id))

    def _get_entrypoint_command(self) -> list:
        """Get command to run pipeline orchestration."""
        return [
            "python",
            "-m",
            "branchwork.orchestrators.pipeline_runner",
        ]

    def _submit_job(self, image, command=None, environment=None, cpu_count=1, memory="2GB"):
        """Start the "job": `command` run by the image's interpreter, with only `environment`."""
        argv = [image, *command[1:]] if command and command[0] == "python" else command
        return subprocess.Popen(argv, env=dict(environment or {}))

    def _wait_for_job(self, job: subprocess.Popen) -> int:
        return job.wait()


class StaticOnlyOrchestrator(ContainerizedOrchestrator):
    """Implements only the job hooks: static pipelines run, dynamic ones are refused."""

    flavor = "static_only"

    def get_image(self, snapshot: PipelineSnapshotResponse) -> str:
        return sys.executable

    _submit_job = MyOrchestrator._submit_job
    _wait_for_job = MyOrchestrator._wait_for_job
