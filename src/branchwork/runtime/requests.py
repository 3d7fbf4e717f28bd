"""What crosses into an orchestrator that hosts a run's loop, and what comes back: typed.

`RunOptions` are how a run runs (cache, failure mode, retries, per-step options, whether a
new graph is accepted). They are recorded in the snapshot's `spec`, so every process that
runs the loop reads the same options, whatever the pipeline object it imported says.
`RunRequest` is the run handed to `BaseOrchestrator.run_loop` / `loop_session`: the snapshot,
the placeholder run, its options and the pipeline whose body the loop runs: the live one
where the pipeline was called, else the one its builder loaded from the snapshot's source
(`pipelines.loading.recorded_request`). A request never loads code itself: loading a
pipeline is the pipelines layer's job, above the runtime. `RunOutcome` is what the loop
hands back: the run's status and the exception that failed it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from branchwork.config.retry import StepRetryConfig
from branchwork.config.run_config import StepOptions
from branchwork.runtime.events import FailureMode
from branchwork.runtime.replay import ReplayPlan
from branchwork.user_code import load_source

if TYPE_CHECKING:
    from branchwork.graph.tracing import Compiled
    from branchwork.models import PipelineRunResponse, PipelineSnapshotResponse
    from branchwork.pipelines.pipeline import Pipeline
    from branchwork.stack import Stack

ACCEPT_NEW_GRAPH_ENV = "BRANCHWORK_ACCEPT_NEW_GRAPH"  # a resume's option, for its job


@dataclass(frozen=True)
class RunOptions:
    """How a run runs; see the module docstring."""

    enable_cache: bool = True
    failure_mode: FailureMode | None = None  # None: the orchestrator's
    retry: StepRetryConfig | None = None  # for steps without their own
    accept_new_graph: bool = False  # a resume's: run the new graph where it diverges
    step_options: Mapping[str, StepOptions] = field(default_factory=dict)
    dynamic: bool | None = None  # as declared
    dynamic_reason: str | None = None  # why it is dynamic, when it is
    refresh: bool | tuple[str, ...] = False  # recompute (all, or these steps) despite the cache
    concurrency_limits: Mapping[str, int] = field(default_factory=dict)  # named, with sizes
    replay: ReplayPlan | None = None  # a replay's overrides and reuse (`runtime.replay`)
    typed_parameters: tuple[str, ...] = ()  # recorded through their annotation: read back so

    @classmethod
    def of(cls, pipeline: Pipeline[Any, Any], dynamic_reason: str | None) -> RunOptions:
        return cls(
            enable_cache=pipeline.enable_cache is not False,
            failure_mode=pipeline.failure_mode,
            retry=pipeline.retry,
            step_options=dict(pipeline.step_options),
            dynamic=pipeline.dynamic,
            dynamic_reason=dynamic_reason,
            refresh=pipeline.refresh,
            concurrency_limits=dict(pipeline.concurrency_limits),
        )

    def to_spec(self) -> dict[str, Any]:
        """The JSON recorded as the snapshot's `spec`."""
        return {
            "enable_cache": self.enable_cache,
            "dynamic": self.dynamic,
            "failure_mode": self.failure_mode.value if self.failure_mode else None,
            "retry": self.retry.to_dict() if self.retry else None,
            "step_options": {name: o.to_dict() for name, o in self.step_options.items()},
            "dynamic_reason": self.dynamic_reason,
            "refresh": self.refresh if self.refresh is True else list(self.refresh or ()),
            "concurrency_limits": dict(self.concurrency_limits),
            **({"replay": self.replay.to_spec()} if self.replay else {}),
            **({"typed_parameters": list(self.typed_parameters)} if self.typed_parameters else {}),
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> RunOptions:
        return cls(
            enable_cache=spec.get("enable_cache") is not False,
            failure_mode=FailureMode(spec["failure_mode"]) if spec.get("failure_mode") else None,
            retry=StepRetryConfig(**spec["retry"]) if spec.get("retry") else None,
            step_options={
                name: StepOptions(**o) for name, o in (spec.get("step_options") or {}).items()
            },
            dynamic=spec.get("dynamic"),
            dynamic_reason=spec.get("dynamic_reason"),
            refresh=True if spec.get("refresh") is True else tuple(spec.get("refresh") or ()),
            concurrency_limits=spec.get("concurrency_limits") or {},
            replay=ReplayPlan.from_spec(spec["replay"]) if spec.get("replay") else None,
            typed_parameters=tuple(spec.get("typed_parameters") or ()),
        )


@dataclass
class RunRequest:
    """One run for a loop host; see the module docstring."""

    snapshot: PipelineSnapshotResponse
    run: PipelineRunResponse
    stack: Stack
    options: RunOptions
    pipeline: Pipeline[Any, Any]
    compiled: Compiled | None = None  # a static DAG traced where the pipeline was called

    @classmethod
    def recorded(
        cls,
        snapshot: PipelineSnapshotResponse,
        run: PipelineRunResponse,
        stack: Stack,
        pipeline: Pipeline[Any, Any],
    ) -> RunRequest:
        """The request of a run found in the store (an orchestration process, a job): its
        recorded options, and a resume's acceptance of a new graph from the environment."""
        options = RunOptions.from_spec(snapshot.spec)
        if os.environ.get(ACCEPT_NEW_GRAPH_ENV) == "1":
            options = replace(options, accept_new_graph=True)
        return cls(snapshot, run, stack, options, pipeline)

    @classmethod
    def from_source(
        cls, snapshot: PipelineSnapshotResponse, run: PipelineRunResponse, stack: Stack
    ) -> RunRequest:
        """`recorded`, its pipeline imported from the snapshot's source: what a process
        that did not define the pipeline runs (see `user_code.load_source`)."""
        pipeline = load_source(
            snapshot.pipeline_name,
            snapshot.source,
            snapshot.source_file,
            snapshot.import_path,
            snapshot.argv,
        )
        return cls.recorded(snapshot, run, stack, pipeline)


@dataclass(frozen=True)
class RunOutcome:
    """How a run hosted here ended: its status, and the exception that failed or stopped
    it (None when it completed)."""

    status: str
    error: BaseException | None = None
