"""Finding a pipeline from its recorded source, in a process that did not define it (the
loading itself, and the rule that it never starts runs, are `user_code.load_source`).

`recorded_request` is how a run found in the store becomes a `RunRequest`: whoever builds
one from a snapshot (an orchestration process, an orchestrator that the seed's plugin API
hands a snapshot to run in this process) loads its pipeline this way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from branchwork.exceptions import PipelineDefinitionError
from branchwork.runtime.requests import RunRequest

if TYPE_CHECKING:
    from branchwork.models import PipelineRunResponse, PipelineSnapshotResponse
    from branchwork.pipelines.pipeline import Pipeline
    from branchwork.stack import Stack


def recorded_request(
    snapshot: PipelineSnapshotResponse, run: PipelineRunResponse, stack: Stack
) -> RunRequest:
    """The request of `run`, found in the store, with its pipeline loaded from the
    snapshot's source (a PipelineDefinitionError if it cannot be)."""
    return RunRequest.from_source(snapshot, run, stack)


def load_pipeline(snapshot: PipelineSnapshotResponse) -> Pipeline[Any, Any]:
    """Import the pipeline named by the snapshot's source ("module:qualname")."""
    from branchwork.pipelines.pipeline import Pipeline
    from branchwork.user_code import load_source

    obj = load_source(
        snapshot.pipeline_name,
        snapshot.source,
        snapshot.source_file,
        snapshot.import_path,
        snapshot.argv,
    )
    if not isinstance(obj, Pipeline):
        raise PipelineDefinitionError(
            f"{snapshot.source!r} is a {type(obj).__name__}, not a @pipeline."
        )
    return obj
