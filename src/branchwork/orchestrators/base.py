"""The orchestrator plugin API.

An orchestrator decides where the orchestration loop runs and how steps are launched.
`submit_pipeline` takes a static pipeline; `submit_dynamic_pipeline` a dynamic one, and an
orchestrator supports dynamic pipelines exactly when it overrides that method.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

ORCHESTRATOR_RUN_ID_ENV = "BRANCHWORK_ORCHESTRATOR_RUN_ID"

if TYPE_CHECKING:
    from branchwork.models import PipelineRunResponse, PipelineSnapshotResponse
    from branchwork.runtime.requests import RunOutcome, RunRequest
    from branchwork.runtime.runner import RunSession
    from branchwork.stack import Stack


@dataclass
class SubmissionResult:
    """What a submission hands back: how to wait for the run, and anything worth knowing.

    `stop`, if given, ends the orchestration job at once. It is called only when a second
    Ctrl-C found the run still unfinished a second after asking its loop to abandon it (the
    loop normally stops by itself: it reads stop requests from the metadata store)."""

    wait_for_completion: Callable[[], Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    stop: Callable[[], None] | None = None


class BaseOrchestrator(ABC):
    """Base of every orchestrator; subclasses set `flavor` and implement the submissions.

    An orchestrator that hosts orchestration loops in the process it is asked to (the
    local ones, Ray) says so with `hosts_loops` and implements `loop_session`; the job of
    one that does not (a container backend) runs the local loop. `runs_loop_in_caller`
    says that submitting a run hosts its loop in the calling process.
    """

    flavor: ClassVar[str] = "base"
    hosts_loops: ClassVar[bool] = False

    def __init__(self, name: str | None = None, **config: Any) -> None:
        self.name = name or self.flavor
        # JSON-able settings: with `flavor` they rebuild this orchestrator in another process.
        self.config = config

    @property
    def supports_dynamic_pipelines(self) -> bool:
        """Whether this orchestrator supports dynamic pipelines.

        Returns True if submit_dynamic_pipeline() is implemented.
        """
        return (
            getattr(self.submit_dynamic_pipeline, "__func__", None)
            is not BaseOrchestrator.submit_dynamic_pipeline
        )

    @abstractmethod
    def submit_pipeline(
        self,
        snapshot: PipelineSnapshotResponse,
        stack: Stack,
        environment: dict[str, str],
        placeholder_run: PipelineRunResponse | None = None,
    ) -> SubmissionResult | None:
        """Run a static pipeline whose every step is in `snapshot`."""

    def submit_dynamic_pipeline(
        self,
        snapshot: PipelineSnapshotResponse,
        stack: Stack,
        environment: dict[str, str],
        placeholder_run: PipelineRunResponse | None = None,
    ) -> SubmissionResult | None:
        """Run a dynamic pipeline: start an orchestration loop that runs the pipeline function.

        `environment` is everything that loop needs to find the run and the store.
        """
        raise NotImplementedError(
            f"Orchestrator '{self.name}' ({type(self).__name__}) does not support dynamic "
            "pipelines."
        )

    @abstractmethod
    def get_orchestrator_run_id(self) -> str:
        """A unique id of the orchestrator's run of the pipeline currently being executed."""

    def static_run_environment(self, environment: dict[str, str]) -> dict[str, str]:
        """`environment` with the orchestrator run id that every job of a static run must
        agree on, `<flavor>-<run id>`, for `get_orchestrator_run_id` to read."""
        run_id = f"{self.flavor}-{environment.get('BRANCHWORK_RUN_ID', '')}"
        return {**environment, ORCHESTRATOR_RUN_ID_ENV: run_id}

    @property
    def runs_loop_in_caller(self) -> bool:
        """Whether a run submitted here has its loop in the calling process; then calling a
        pipeline runs its body once, tracing and running in one pass."""
        return False

    def loop_session(self, request: RunRequest, orchestrator_run_id: str) -> RunSession:
        """A session hosting the request's orchestration loop in this process, its steps
        launched the way this orchestrator launches them (only where `hosts_loops`)."""
        raise NotImplementedError(f"Orchestrator '{self.name}' does not host loops.")

    def run_loop(self, request: RunRequest, orchestrator_run_id: str) -> RunOutcome:
        """Run the request's run start to end with its loop in this process (only where
        `hosts_loops`): what an orchestration process does, and a local submission."""
        return self.loop_session(request, orchestrator_run_id).run()
