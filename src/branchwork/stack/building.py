"""Turning registry records into the objects a run uses: artifact stores and stacks.

The built-in default stack is built like any other, from its rows: the local orchestrator
with no settings and a local artifact store without a path (the home's artifacts folder).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from branchwork.exceptions import ConfigurationError
from branchwork.stack.orchestrator_settings import build_orchestrator, first_line
from branchwork.stack.records import ComponentRecord, StackRecord

if TYPE_CHECKING:
    from branchwork.artifact_stores import BaseArtifactStore
    from branchwork.stack.stack import Stack


def build_artifact_store(record: ComponentRecord) -> BaseArtifactStore:
    """The artifact store a component describes (a configured one is remembered by this
    process, so artifacts under its URL are read with its settings)."""
    from branchwork.artifact_stores import LocalArtifactStore, artifact_store_from_spec

    if record.flavor == "local":
        return LocalArtifactStore(record.location or "")
    try:
        return artifact_store_from_spec(fsspec_store_spec(record))
    except Exception as error:
        raise ConfigurationError(
            f"Artifact store '{record.name}': cannot open {record.config.get('url')!r}: "
            f"{first_line(error)}"
        ) from None


def fsspec_store_spec(record: ComponentRecord) -> dict[str, str]:
    """The spec of a registered fsspec store: its URL and settings (never a secret)."""
    return {"root": str(record.config["url"])} | {
        name: str(value) for name, value in record.config.items() if name != "url"
    }


def build_stack(record: StackRecord) -> Stack:
    """The runnable `Stack` a record describes."""
    from branchwork.stack.stack import Stack

    orchestrator = record.orchestrator
    return Stack(
        record.name,
        build_orchestrator(orchestrator.name, orchestrator.flavor, orchestrator.config),
        build_artifact_store(record.artifact_store),
    )
