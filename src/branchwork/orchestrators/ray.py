"""The Ray orchestrator: static and dynamic pipelines on a Ray cluster, each step a Ray task.

Settings (JSON-able: with the flavor they rebuild the orchestrator in the loop's process):
`address` (None: attach to the cluster running on this machine, or start one; "auto",
"host:port" or "ray://host:10001": an existing cluster), `num_cpus` (start a fresh local
cluster of that size), `loop` ("driver": the orchestration loop runs in the calling process,
like the local orchestrator; "cluster": it runs as a Ray task, the code path of `python -m
branchwork.orchestrators.pipeline_runner`), `max_workers` (steps in flight), `failure_mode`,
`step_cpus` (what a step without resource settings holds), `check_resources`,
`batch_steps` (quick steps share Ray tasks, see `ray_launcher`) and `init_args` (more
`ray.init` keyword arguments, e.g. `runtime_env`).

Why it is built this way (docs/ray.md says more):

* Steps without resource settings hold `step_cpus=0.25`: four per CPU, so 8 sleeping or
  I/O-bound steps run side by side on 2 CPUs, while a step with `cpu_count=1` holds a whole
  CPU and CPU-bound steps get real cores. A smaller share would start more worker processes
  per core than Ray's pool can keep warm.
* The loop task applies its environment itself rather than as a `runtime_env` (see
  `ray_loop`): runs then share warm worker processes.
* Admission: the engine's capacity is the cluster's total; Ray does the real placement.
  A step no node can ever run is refused: for a static snapshot before anything runs (the
  run fails naming the step), for a dynamic one when it is launched (the step fails).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
import traceback
from typing import TYPE_CHECKING, Any

from branchwork.artifact_stores import LocalArtifactStore
from branchwork.config.resources import ResourceSettings
from branchwork.exceptions import ConfigurationError, OrchestratorError
from branchwork.metadata.recorder import Recorder, utc
from branchwork.metadata.store import get_engine
from branchwork.orchestrators.base import (
    ORCHESTRATOR_RUN_ID_ENV,
    BaseOrchestrator,
    SubmissionResult,
)
from branchwork.orchestrators.ray_cluster import ClusterResources, connect, demand_for
from branchwork.orchestrators.ray_launcher import RayLauncher
from branchwork.orchestrators.ray_loop import end_loop, loop_task, wait_for_loop
from branchwork.runtime.events import FailureMode
from branchwork.runtime.launchers import InlineLauncher, Launcher, RoutingLauncher
from branchwork.runtime.requests import RunOutcome, RunRequest
from branchwork.runtime.runner import RunSession, current_orchestrator_run_id
from branchwork.user_code import user_import_path

if TYPE_CHECKING:
    from branchwork.models import PipelineRunResponse, PipelineSnapshotResponse
    from branchwork.stack import Stack

logger = logging.getLogger("branchwork")

LOOPS = ("driver", "cluster")


class RayOrchestrator(BaseOrchestrator):
    """Runs pipelines on a Ray cluster; see the module docstring."""

    flavor = "ray"
    hosts_loops = True

    def __init__(
        self,
        name: str | None = None,
        *,
        address: str | None = None,
        num_cpus: int | None = None,
        loop: str = "driver",
        max_workers: int | None = None,
        failure_mode: FailureMode | str = FailureMode.STOP_ON_FAILURE,
        step_cpus: float = 0.25,
        check_resources: bool = True,
        batch_steps: bool = True,
        init_args: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            name,
            address=address,
            num_cpus=num_cpus,
            loop=loop,
            max_workers=max_workers,
            failure_mode=FailureMode(failure_mode).value,
            step_cpus=step_cpus,
            check_resources=check_resources,
            batch_steps=batch_steps,
            init_args=dict(init_args or {}),
        )
        if loop not in LOOPS:
            raise ConfigurationError(f"RayOrchestrator loop must be one of {LOOPS}, got {loop!r}")
        if max_workers is not None and max_workers < 1:
            raise ConfigurationError(f"max_workers must be at least 1, got {max_workers}")
        if step_cpus < 0:
            raise ConfigurationError(f"step_cpus must not be negative, got {step_cpus}")
        if address is not None and num_cpus is not None:
            raise ConfigurationError(
                "RayOrchestrator: num_cpus sizes a local cluster it starts; it cannot be "
                f"combined with address={address!r} (the cluster's nodes decide its size)."
            )
        self.loop = loop
        self.step_cpus = float(step_cpus)
        self.check_resources = check_resources
        self.batch_steps = bool(batch_steps)
        self.failure_mode = FailureMode(failure_mode)

    # ---- submission ---------------------------------------------------------------------

    def submit_pipeline(
        self,
        snapshot: PipelineSnapshotResponse,
        stack: Stack,
        environment: dict[str, str],
        placeholder_run: PipelineRunResponse | None = None,
    ) -> SubmissionResult | None:
        """With `loop="cluster"`, the loop runs as a Ray task; with "driver", here (a
        pipeline called in this process hands its run to `run_loop` directly, live)."""
        if self.loop == "cluster":
            if not snapshot.is_dynamic:  # every task agrees on the id: it travels this way
                environment = self.static_run_environment(environment)
            return self._submit_loop(environment)  # dynamic: the loop task's own id
        if placeholder_run is None:
            raise OrchestratorError("The Ray orchestrator needs the placeholder run.")
        # Handed only a snapshot: its pipeline is imported from the recorded source.
        request = RunRequest.from_source(snapshot, placeholder_run, stack)
        self.run_loop(request, f"{self.flavor}-{placeholder_run.id}")
        return None

    submit_dynamic_pipeline = submit_pipeline  # one loop for both kinds of pipeline

    def get_orchestrator_run_id(self) -> str:
        """A loop hosted here: the id of its run. Static runs: the id every task sees in
        its environment. Dynamic runs with the loop on the cluster: the loop task's id."""
        run_id = current_orchestrator_run_id() or os.environ.get(ORCHESTRATOR_RUN_ID_ENV)
        if run_id:
            return run_id
        task_id = _ray_task_id()
        if task_id:
            return f"ray-{task_id}"
        raise OrchestratorError(
            f"Orchestrator '{self.name}' is not running a pipeline in this context."
        )

    def _submit_loop(self, environment: dict[str, str]) -> SubmissionResult:
        self._connect()
        name = f"branchwork-loop:{environment.get('BRANCHWORK_RUN_ID', '')}"
        ref = loop_task().options(name=name).remote(environment)
        return SubmissionResult(
            functools.partial(wait_for_loop, ref),
            {"ray_task_id": ref.task_id().hex()},
            functools.partial(end_loop, ref),
        )

    # ---- the loop -----------------------------------------------------------------------

    @property
    def runs_loop_in_caller(self) -> bool:
        return self.loop == "driver"

    def run_loop(self, request: RunRequest, orchestrator_run_id: str) -> RunOutcome:
        """Run the request's run with its loop in this process; a static run with a step
        no node can run is refused before anything runs."""
        if self.check_resources and not request.snapshot.is_dynamic:
            self._connect()
            refused = self._static_refusal(request.snapshot, ClusterResources.current())
            if refused is not None:
                return _record_refusal(request.run, orchestrator_run_id, *refused)
        return self.loop_session(request, orchestrator_run_id).run()

    def loop_session(self, request: RunRequest, orchestrator_run_id: str) -> RunSession:
        """The request's orchestration loop in this process, its steps on the cluster."""
        self._connect()
        cluster = ClusterResources.current()
        _warn_if_store_is_local(request.stack, cluster)
        return RunSession(
            request,
            launcher=self._launcher(cluster, orchestrator_run_id),
            capacity=cluster.total,
            max_workers=self._max_workers(cluster),
            orchestrator_run_id=orchestrator_run_id,
            failure_mode=self.failure_mode,
        )

    def _launcher(self, cluster: ClusterResources, orchestrator_run_id: str | None) -> Launcher:
        environment = {ORCHESTRATOR_RUN_ID_ENV: orchestrator_run_id} if orchestrator_run_id else {}
        ray_launcher = RayLauncher(
            cluster,
            step_cpus=self.step_cpus,
            environment=environment,
            import_path=user_import_path(),
            check_resources=self.check_resources,
            batch_steps=self.batch_steps,
        )
        inline = InlineLauncher(self._max_workers(cluster))
        return RoutingLauncher(inline, ray_launcher, lambda step: step.runtime != "inline")

    def _max_workers(self, cluster: ClusterResources) -> int:
        """As configured, or four times the plain steps the cluster runs at once (at least
        64): Ray's queue is cheap, and a full one hides the loop's round trip per step.
        Quick steps in batches do not count (`RayLauncher.holds_worker`)."""
        configured = self.config["max_workers"]
        if configured:
            return int(configured)
        cpus = cluster.total.cpu
        at_once = cpus / self.step_cpus if self.step_cpus > 0 else 4 * cpus
        return max(64, int(4 * at_once))

    def _static_refusal(
        self, snapshot: PipelineSnapshotResponse, cluster: ClusterResources
    ) -> tuple[str, OrchestratorError] | None:
        for invocation_id, configuration in snapshot.step_configurations.items():
            resources = ResourceSettings(**(configuration.config.get("resources") or {}))
            demand = demand_for(resources, self.step_cpus)
            if not cluster.can_run(demand):
                return invocation_id, cluster.refusal(
                    configuration.step_name, invocation_id, demand
                )
        return None

    def _connect(self) -> None:
        connect(self.config["address"], self.config["num_cpus"], self.config["init_args"])


def _ray_task_id() -> str | None:
    ray: Any = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    task_id = ray.get_runtime_context().get_task_id()
    return str(task_id) if task_id else None


def _record_refusal(
    run: PipelineRunResponse,
    orchestrator_run_id: str,
    invocation_id: str,
    error: OrchestratorError,
) -> RunOutcome:
    """Fail a static run before any step runs: one of its steps can never be placed."""
    now = utc(time.time())
    recorder = Recorder(get_engine(), run.id)
    recorder.run_update(
        status="failed",
        start_time=now,
        end_time=now,
        orchestrator_run_id=orchestrator_run_id,
        failed_step=invocation_id,
        exception_type=type(error).__name__,
        exception_message=str(error),
        traceback="".join(traceback.format_exception(error)),
    )
    recorder.flush()
    return RunOutcome("failed", error)


def _warn_if_store_is_local(stack: Stack, cluster: ClusterResources) -> None:
    if len(cluster.nodes) > 1 and isinstance(stack.artifact_store, LocalArtifactStore):
        logger.warning(
            "The artifact store of stack '%s' is the local path %s, but the Ray cluster has "
            "%d nodes: every node must see that path (a shared filesystem), or use an fsspec "
            "URL (s3://, gs://, ...) as the artifact store.",
            stack.name,
            stack.artifact_store.root,
            len(cluster.nodes),
        )
