"""What the stack registry hands out: a registered component or stack, as read from the store.

The built-in "default" stack and its two "default" components are ordinary rows, seeded by
migration 0004; `builtin` is only their name. The default artifact store's config is
`{"path": null}`: a local store without a path keeps its files in the branchwork home's
artifacts folder, so it follows the home (`BRANCHWORK_HOME`) instead of pinning one folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from branchwork.exceptions import ConfigurationError

DEFAULT = "default"
ORCHESTRATOR = "orchestrator"
ARTIFACT_STORE = "artifact_store"
KIND_LABEL = {ORCHESTRATOR: "orchestrator", ARTIFACT_STORE: "artifact store"}


@dataclass(frozen=True)
class ComponentRecord:
    """A registered orchestrator or artifact store."""

    name: str
    kind: str
    flavor: str
    config: dict[str, Any]
    created: datetime | None = None

    @property
    def builtin(self) -> bool:
        return self.name == DEFAULT

    @property
    def label(self) -> str:
        return f"{KIND_LABEL[self.kind]} '{self.name}'"

    @property
    def location(self) -> str | None:
        """Where an artifact store keeps its files; None for an orchestrator."""
        if self.kind != ARTIFACT_STORE:
            return None
        where = self.config.get("path") or self.config.get("url")
        if where is None:  # a local store without a path: the home's artifacts folder
            from branchwork.config.home import artifacts_dir

            return str(artifacts_dir())
        return str(where)


@dataclass(frozen=True)
class StackRecord:
    """A registered stack, with its components."""

    name: str
    orchestrator: ComponentRecord
    artifact_store: ComponentRecord
    active: bool = False
    created: datetime | None = None

    @property
    def builtin(self) -> bool:
        return self.name == DEFAULT


def check_kind(kind: str) -> None:
    if kind not in KIND_LABEL:
        raise ConfigurationError(
            f"Unknown component kind {kind!r}; use orchestrator or artifact_store."
        )


def check_new_name(name: str, what: str) -> None:
    """Refuse an empty name, and "default", which the built-in stack and components hold."""
    if not isinstance(name, str) or not name.strip():
        article = "An" if what[0] in "aeiou" else "A"
        raise ConfigurationError(f"{article} {what} needs a non-empty name.")
    if name == DEFAULT:
        raise ConfigurationError(
            f"The name 'default' is reserved for the built-in {what}; choose another name."
        )


def builtins_first(records: list[Any]) -> list[Any]:
    """`records` (sorted by name) with the built-in default moved to the front."""
    return sorted(records, key=lambda record: not record.builtin)
