"""Client: read pipeline runs, step runs and artifacts from the metadata store. Resuming a
failed run, answering a paused one and replaying a run are submissions: the Client finds the
run and hands it to `pipelines` (`submit`, `answering`, `replay`).

Reads never write: a run whose loop stopped heartbeating (its process died) reads as FAILED
by the rule of `metadata.lost`, the same in every reader; the next run, a resume or
`branchwork runs reap` records it.
"""

from __future__ import annotations

from typing import Any

from branchwork.exceptions import OrchestratorError
from branchwork.metadata.queries import child_run_ids, get_run, list_run_ids
from branchwork.metadata.run_cache import cache_decisions
from branchwork.metadata.run_logs import step_logs
from branchwork.metadata.run_pages import invocation_names
from branchwork.metadata.run_refs import resolve_run
from branchwork.metadata.step_pages import require_invocation
from branchwork.metadata.store import get_engine
from branchwork.models import (
    ArtifactVersionResponse,
    CacheDecision,
    PipelineRunResponse,
    WaitResponse,
)

RunRef = str | PipelineRunResponse
"""A run: its id, name, a unique prefix of either, `latest`, `latest:PIPELINE`, or the run
itself (`pipeline.last_run`, what a Client read)."""


class Client:
    """Reads the store at `store_url` (default: the configured one). Every method that
    takes a run takes a `RunRef`."""

    def __init__(self, store_url: str | None = None) -> None:
        from branchwork.stack.components import remember_registered_stores

        self._engine = get_engine(store_url)
        # Artifacts in a registered S3 store load with its endpoint and credentials.
        remember_registered_stores(self._engine)

    def get_pipeline_run(
        self, id_or_name: RunRef, include_steps: bool = True
    ) -> PipelineRunResponse:
        """A run by id or name (or `latest`, `latest:PIPELINE`, a unique prefix of a name or
        id), with its snapshot, outputs and, unless `include_steps=False`, every step run (for
        a run of many steps that read costs about 15 KB per step run; without them it costs
        the same for any run)."""
        return get_run(self._engine, self._run_id(id_or_name), include_steps)

    def list_pipeline_runs(
        self, pipeline: str | None = None, limit: int | None = None
    ) -> list[PipelineRunResponse]:
        """Runs, newest first, optionally of one pipeline (by name)."""
        return [
            get_run(self._engine, run_id) for run_id in list_run_ids(self._engine, pipeline, limit)
        ]

    def list_child_runs(self, run_id_or_name: RunRef) -> list[PipelineRunResponse]:
        """The child runs of a run (pipelines its body called or submitted), oldest first."""
        parent = self._run_id(run_id_or_name)
        return [get_run(self._engine, child) for child in child_run_ids(self._engine, parent)]

    def get_step_logs(
        self, run_id_or_name: RunRef, invocation_id: str | None = None, attempt: int | None = None
    ) -> dict[str, str]:
        """Captured stdout, stderr and logging of a run's steps (latest attempt of each, or
        of one invocation: its `attempt`, if given), by invocation id ("" for one that
        printed nothing)."""
        run = self.get_pipeline_run(run_id_or_name, include_steps=False)
        if invocation_id is None:
            names = invocation_names(self._engine, run)
        else:
            require_invocation(self._engine, run, invocation_id)
            names = [invocation_id]
        if attempt is not None and invocation_id is None:
            raise TypeError("get_step_logs: an attempt is one invocation's; give invocation_id.")
        logs = step_logs(self._engine, run, invocation_id, attempt)
        texts = {log.invocation: log.text for log in logs}
        return {name: texts.get(name, "") for name in names}

    def get_cache_decisions(self, run_id_or_name: RunRef) -> dict[str, CacheDecision]:
        """Why each invocation of a run (its latest attempt) was a cache hit or a miss, by
        invocation id, in the order they ran."""
        run = self.get_pipeline_run(run_id_or_name, include_steps=False)
        return {d.invocation_id: d for d in cache_decisions(self._engine, run)}

    def get_artifact_version(
        self, name_or_id: str, version: int | None = None
    ) -> ArtifactVersionResponse:
        """An artifact version: the latest (highest numbered) of the artifact called
        `name_or_id`, its version `version`, or the version with that id. `.load()` reads
        its value."""
        from branchwork.metadata.artifact_listing import artifact_version_by_name_or_id

        return artifact_version_by_name_or_id(self._engine, name_or_id, version)

    def list_artifact_versions(
        self,
        name: str | None = None,
        tag: str | None = None,
        pipeline: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> list[ArtifactVersionResponse]:
        """Artifact versions, newest first: of the artifact `name`, tagged `tag`, made by a
        run of `pipeline`, whose metadata logged with `log_artifact_metadata` has each key
        of `metadata` equal to its value (compared as JSON: 1 and 1.0 differ). Filters left
        out do not narrow the list; none match gives an empty list."""
        from branchwork.metadata.artifact_listing import list_artifact_versions

        return list_artifact_versions(self._engine, name, tag, pipeline, metadata)

    def invalidate_cache(self, step_name: str, pipeline_name: str | None = None) -> int:
        """Stop serving the cached results of a step (of one pipeline, or of every pipeline
        that has it): its next run computes anew. Returns how many results were invalidated;
        raises if no such step ever ran."""
        from branchwork.metadata.cache_entries import invalidate_step

        return invalidate_step(self._engine, step_name, pipeline_name)

    def resume_run(self, id_or_name: RunRef, accept_new_graph: bool = False) -> Any:
        """Finish a FAILED or STOPPED run on the active stack, as the same run: invocations
        that completed are reused by id (caching or not), failed and never-started ones run.
        If an invocation id now names another step, other inputs or changed code, the run
        stops there with a ReplayDivergenceError, unless `accept_new_graph`. Returns the
        pipeline's value, as calling the pipeline does. A PAUSED run resumes once its
        question is answered or timed out (see `answer_run`); a child run that its parent
        paused with resumes with the parent (whose value is returned)."""
        from branchwork.metadata.lost import not_resumable_message
        from branchwork.metadata.waits import paused_root
        from branchwork.pipelines.answering import settle_pause
        from branchwork.pipelines.loading import load_pipeline
        from branchwork.pipelines.submit import resume_pipeline

        run = self.get_pipeline_run(id_or_name, include_steps=False)
        if run.status == "paused":
            settle_pause(self._engine, run)
            run = paused_root(self._engine, run)  # resumes its paused child where it calls it
        elif run.status not in ("failed", "stopped"):  # before its code is imported and run
            raise OrchestratorError(not_resumable_message(run))
        return resume_pipeline(load_pipeline(run.snapshot), run, accept_new_graph)

    def stop_run(self, id_or_name: RunRef, abandon: bool = False) -> None:
        """Ask a running run to stop, wherever its loop runs, as Ctrl-C where it was started
        would: it starts no new step and is recorded STOPPED once its running steps finish
        (with `abandon`, at once, giving them up). Returns when asked, not when stopped."""
        from branchwork.metadata.runs import stop_run

        stop_run(self._engine, self.get_pipeline_run(id_or_name, include_steps=False), abandon)

    def answer_run(self, id_or_name: RunRef, value: Any) -> Any:
        """Answer the question a PAUSED run waits on (`branchwork.wait`) and resume it on the
        active stack: `value` is checked against the question's schema first
        (InvalidAnswerError, nothing recorded, if it does not match). Returns the pipeline's
        value, or raises RunPaused if the run stops at a further question. A parent run paused
        with its child run: either run takes the child's question, and the parent resumes
        (resuming the child where it calls it) and its value is returned."""
        from branchwork.pipelines.answering import record_answer_to

        run = self.get_pipeline_run(id_or_name, include_steps=False)
        record_answer_to(self._engine, run, value)
        return self.resume_run(run.id)

    def get_run_waits(self, id_or_name: RunRef) -> list[WaitResponse]:
        """The questions a run asked with `branchwork.wait`, in order, with their answers."""
        from branchwork.metadata.waits import run_waits

        return run_waits(self._engine, self._run_id(id_or_name))  # steps unread

    def replay(
        self,
        id_or_name: RunRef,
        skip_successful: bool = False,
        step_input_overrides: dict[str, dict[str, Any]] | None = None,
    ) -> Any:
        """Run a run's pipeline again, as a new run on the active stack, with its parameters
        and options and `step_input_overrides` ({step name or invocation id: {argument:
        value}}) replacing those arguments. With `skip_successful`, what the original run
        finished is reused by invocation id (recorded cached), except the overridden
        invocations and everything after them. Returns the pipeline's value."""
        from branchwork.pipelines.replay import replay_run

        original = self.get_pipeline_run(id_or_name, include_steps=False)
        return replay_run(original, skip_successful, step_input_overrides)

    def _run_id(self, run: RunRef) -> str:
        if isinstance(run, PipelineRunResponse):
            return run.id
        if not isinstance(run, str):
            raise TypeError(
                "A run is its id or name (a str) or a PipelineRunResponse; got "
                f"{type(run).__name__} {run!r}."
            )
        return resolve_run(self._engine, run)
