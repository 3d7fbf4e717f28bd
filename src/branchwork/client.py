"""Client: read pipeline runs, step runs and artifacts from the metadata store."""

from __future__ import annotations

from branchwork.metadata.queries import get_run, list_run_ids
from branchwork.metadata.store import get_engine
from branchwork.models import PipelineRunResponse


class Client:
    """Reads the store at `store_url` (default: the configured one)."""

    def __init__(self, store_url: str | None = None) -> None:
        self._engine = get_engine(store_url)

    def get_pipeline_run(self, id_or_name: str) -> PipelineRunResponse:
        """A run by id or name, with its snapshot, steps and outputs."""
        return get_run(self._engine, id_or_name)

    def list_pipeline_runs(
        self, pipeline: str | None = None, limit: int | None = None
    ) -> list[PipelineRunResponse]:
        """Runs, newest first, optionally of one pipeline (by name)."""
        return [
            get_run(self._engine, run_id) for run_id in list_run_ids(self._engine, pipeline, limit)
        ]
