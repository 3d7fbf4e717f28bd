"""`ExternalArtifact`: an artifact version made outside the run, passed to a step as an
argument, so that a pipeline can consume last week's model.

It is looked up in the metadata store when it is created: a run uses one version throughout,
recorded as the step run's input like a step output. The step receives the loaded value;
the value's content hash (not the version number) enters the step's cache key, so a new
version with the same contents is still a hit, and one with other contents is a miss.
"""

from __future__ import annotations

from typing import Any

from branchwork.exceptions import StepInvocationError


class ExternalArtifact:
    """`ExternalArtifact("model")` (its latest version), `ExternalArtifact("model", version=2)`
    or `ExternalArtifact(id="...")` (one version by id)."""

    __slots__ = (
        "name",
        "version",
        "version_id",
        "uri",
        "materializer",
        "data_type",
        "content_hash",
        "inline",
    )

    def __init__(
        self, name: str | None = None, version: int | None = None, *, id: str | None = None
    ) -> None:
        from branchwork.metadata.artifact_listing import find_artifact_version, get_artifact_version
        from branchwork.metadata.store import get_engine

        if (name is None) == (id is None):
            raise StepInvocationError(
                "ExternalArtifact needs an artifact name (and optionally version=) or id=, "
                f"not {'both' if name else 'neither'}."
            )
        engine = get_engine()
        found = (
            get_artifact_version(engine, id)
            if id is not None
            else find_artifact_version(engine, name or "", version)
        )
        self.name: str = found.name
        self.version: int = found.version
        self.version_id: str = found.id
        self.uri: str = found.uri
        self.materializer: str = found.materializer
        self.data_type: str = found.data_type
        self.content_hash: str = found.content_hash
        self.inline: bytes | None = found.inline_data

    def to_json(self) -> dict[str, Any]:
        """As a recorded step configuration writes it."""
        return {"$external": self.name, "version": self.version, "id": self.version_id}

    def __repr__(self) -> str:
        return f"ExternalArtifact({self.name!r}, version={self.version})"
